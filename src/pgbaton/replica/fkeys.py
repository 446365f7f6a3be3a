"""The catalog's copy of the source's foreign keys (see mysql/foreignkeys.py)."""

from __future__ import annotations

import logging

import psycopg
import pymysql

from pgbaton.config import Config
from pgbaton.errors import SourceError, SourceUnavailable
from pgbaton.mysql.foreignkeys import ForeignKey, read_foreign_keys

log = logging.getLogger(__name__)


def refresh(cfg: Config, source: str, conn: psycopg.Connection) -> list[ForeignKey]:
    """Read the source's foreign keys now and store them, in the caller's transaction.

    Raises SourceUnavailable when the source cannot be reached (the replica retries)."""
    from pgbaton.replica.init import mysql_connect

    src = cfg.source(source)
    try:
        my = mysql_connect(src)
    except SourceError as exc:
        raise SourceUnavailable(str(exc)) from None
    try:
        fks = read_foreign_keys(my, sorted(src.databases))
    except pymysql.err.MySQLError as exc:
        raise SourceUnavailable(f"cannot read the foreign keys of source {source}: "
                                f"{exc.args[-1] if exc.args else exc}") from None
    finally:
        my.close()
    store(conn, source, fks)
    return fks


def store(conn: psycopg.Connection, source: str, fks: list[ForeignKey]) -> None:
    old = {r[0] for r in conn.execute(
        "SELECT child_db || '.' || child_table || '.' || name FROM foreign_keys WHERE source = %s AND "
        "(on_delete IN ('CASCADE', 'SET NULL') OR on_update IN ('CASCADE', 'SET NULL'))", (source,)).fetchall()}
    conn.execute("DELETE FROM foreign_keys WHERE source = %s", (source,))
    for fk in fks:
        conn.execute(
            """INSERT INTO foreign_keys (source, child_db, child_table, name, child_cols, parent_db, parent_table,
                   parent_cols, on_delete, on_update) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (source, fk.child_db, fk.child_table, fk.name, list(fk.child_cols), fk.parent_db, fk.parent_table,
             list(fk.parent_cols), fk.on_delete, fk.on_update))
        if fk.cascades and f"{fk.child_db}.{fk.child_table}.{fk.name}" not in old:
            log.info("source %s: cascading foreign key %s is reproduced by replay", source, fk.label())
