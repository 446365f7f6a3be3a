"""Apply a DDL batch from the binlog to the replica.

This is the hook where replicated DDL is translated and applied in stream
order.  Until the translator lands, a statement that touches a replicated
database is recorded in the error log (it never stops the replica).
"""

from __future__ import annotations

import logging

import psycopg
import sqlglot
from sqlglot import exp

from pgbaton.cdc.replay import Batch
from pgbaton.config import Config

log = logging.getLogger(__name__)


def referenced_databases(statement: str, default_db: str | None) -> set[str] | None:
    """Databases whose tables the statement names, or None when it cannot be parsed."""
    try:
        trees = sqlglot.parse(statement, read="mysql")
    except sqlglot.errors.SqlglotError:
        return None
    dbs: set[str] = set()
    for tree in trees:
        if tree is None:
            continue
        for table in tree.find_all(exp.Table):
            db = table.db or default_db
            if db:
                dbs.add(db)
    return dbs


def apply_ddl_batch(conn: psycopg.Connection, cfg: Config, source: str, batch: Batch) -> None:
    src = cfg.source(source)
    statement = batch.ddl or ""
    dbs = referenced_databases(statement, batch.ddl_db)
    if dbs is not None and not (dbs & set(src.databases)):
        log.debug("source %s: DDL for other databases passed over: %.80s", source, statement)
        return
    log.warning("source %s: DDL not applied (batch %s): %.200s", source, batch.batch_id, statement)
    conn.execute(
        """INSERT INTO errors (source, batch_id, kind, message, change)
           VALUES (%s, %s, 'ddl', %s, jsonb_build_object('statement', %s::text, 'db', %s::text))""",
        (source, batch.batch_id, "DDL statement was not applied to the replica", statement, batch.ddl_db),
    )
