"""Copy sequence values from the source to the target (switchover step 5, usable on its own)."""

from __future__ import annotations

import logging

import psycopg

from pgbaton.config import Config
from pgbaton.errors import PgbatonError
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.lifecycle import Command, admit
from pgbaton.migrate.probe import connect
from pgbaton.migrate.streams import Side, rw
from pgbaton.migrate.switchover import SeqValue, sequence_updates

log = logging.getLogger(__name__)

_READ = ("SELECT format('%I.%I', schemaname, sequencename), last_value, increment_by FROM pg_sequences "
         "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")


def _read(conn: psycopg.Connection) -> dict[str, SeqValue]:
    return {r[0]: SeqValue(r[1], r[2]) for r in conn.execute(_READ).fetchall()}


def copy_sequences(old: Side, new: Side, dbs: list[str]) -> dict[str, dict[str, int]]:
    """Per database, the sequences of ``new`` moved forward to ``old``'s values (``new`` may be frozen)."""
    done: dict[str, dict[str, int]] = {}
    for db in dbs:
        with connect(old.cluster, old.name, db) as s, rw(new, db) as t:
            done[db] = copy_db_sequences(s, t, db, new.name)
    return done


def copy_db_sequences(old: psycopg.Connection, new: psycopg.Connection, db: str, new_name: str) -> dict[str, int]:
    """On sessions of ``db`` (``new``'s one may write although frozen): the sequences moved forward."""
    updates, missing = sequence_updates(_read(old), _read(new))
    for seq, value in updates.items():
        new.execute("SELECT setval(%s::regclass, %s, true)", (seq, value))
    if missing:
        log.warning("database %s: sequences missing on the %s: %s", db, new_name, ", ".join(missing))
    return updates


def sync_sequences(config: Config, name: str) -> dict[str, dict[str, int]]:
    """Per database, the sequences moved forward on the target and their new values."""
    cfg = config.migration(name)
    with connect(cfg.target, "target") as t:
        catalog = Catalog(t, cfg.options.catalog_schema, name)
        admission = admit(Command.sync_sequences, catalog.state(), name)
        if not admission.act:
            raise PgbatonError(admission.message)
    return copy_sequences(Side(cfg.source, "source"), Side(cfg.target, "target"), cfg.databases)
