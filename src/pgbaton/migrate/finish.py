"""``finish``: end a migration for good, keeping both clusters' data.

Every replication object pgbaton made is dropped on both sides, slots first (the stream that
runs now first: the reverse one after a switchover, the forward one before), then the
subscriptions and publications of both directions, the replica identities pgbaton changed are
restored, the primary (where the clients are) is made writable, and the catalog rows are
removed.  Databases are kept on both sides, and the cluster the clients left stays as it is
(after a switchover: read-only, ``default_transaction_read_only = on`` per database).
Idempotent: a second run finds nothing to do.
"""

from __future__ import annotations

import logging

from psycopg import sql

from pgbaton.config import Config, MigrationConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate import ddl, streams
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.lifecycle import Command, Event, State, admit
from pgbaton.migrate.names import object_name
from pgbaton.migrate.probe import connect, database_exists
from pgbaton.migrate.streams import FWD, REV, SWITCHED, SWITCHED_BACK, Side

log = logging.getLogger(__name__)
Ident = sql.Identifier


def finish(config: Config, name: str, *, timeout: float = 30.0) -> list[str]:
    """Drop every replication object of the migration on both sides and forget it; what was done."""
    cfg = config.migration(name)
    done: list[str] = []
    with connect(cfg.target, "target") as tconn:
        catalog = Catalog(tconn, cfg.options.catalog_schema, name)
        if catalog.exists():
            catalog.ensure()
        catalog.hold("finish")
        state = catalog.state()
        admission = admit(Command.finish, state, name)
        if not admission.act:
            raise PgbatonError(admission.message)
        order = [REV, FWD] if state == SWITCHED else [FWD, REV]
        for db in cfg.databases:
            for direction in order:  # slots first: once gone, nothing holds WAL any more
                obj = object_name(name, db, direction)
                subid = streams.disable_subscription(streams.subscriber(cfg, direction), db, obj)
                done += streams.drop_slots(streams.publisher(cfg, direction), obj, subid, timeout)
        for db in cfg.databases:
            for direction in order:
                obj = object_name(name, db, direction)
                done += streams.drop_subscription(streams.subscriber(cfg, direction), db, obj)
                done += streams.drop_publication(streams.publisher(cfg, direction), db, obj)
            done += _restore_identities(cfg, db, catalog.identities(db))
            for side in (Side(cfg.source, "source"), Side(cfg.target, "target")):
                done += ddl.uninstall(side, db)
        if state in (SWITCHED, SWITCHED_BACK):
            primary = Side(cfg.target, "target") if state == SWITCHED else Side(cfg.source, "source")
            with streams.rw(primary) as p:
                for db in cfg.databases:
                    p.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(Ident(db)))
        for side in (Side(cfg.source, "source"), Side(cfg.target, "target")):
            done += streams.reconcile_apply_exemption(side, cfg.databases)
        if state is not State.not_started:
            catalog.forget(Event.finish)
            done.append(f"catalog: migration {name}")
    log.info("migration %s finished: %d object(s) removed", name, len(done))
    return done


def _restore_identities(cfg: MigrationConfig, db: str, identities: list[tuple[str, str]]) -> list[str]:
    """Put back the replica identity pgbaton changed on the source (and the dump carried to the target)."""
    done: list[str] = []
    for side in (Side(cfg.source, "source"), Side(cfg.target, "target")):
        with connect(side.cluster, side.name) as c:
            if not database_exists(c, db):
                continue
        with streams.rw(side, db) as s:
            for table, previous in identities:
                row = s.execute("SELECT relreplident::text FROM pg_class WHERE oid = to_regclass(%s)",
                                (table,)).fetchone()
                if row is None or row[0] == previous:
                    continue
                ident = sql.SQL("NOTHING" if previous == "n" else "DEFAULT")
                s.execute(sql.SQL("ALTER TABLE {} REPLICA IDENTITY {}").format(sql.SQL(table), ident))
                done.append(f"{side.name}: {db}: replica identity of {table} restored")
    return done
