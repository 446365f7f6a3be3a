"""`maintenance`: delete replayed batches past their retention and VACUUM pgbaton's tables.

The replica does both on its own while it runs (cleanup every few seconds, VACUUM of the
log table after cleanups, see ``log_vacuum_seconds``); this command does it on demand, for
example after a long stop.  Neither step blocks reading or replay.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import sql

from pgbaton.cdc.replay import Replayer
from pgbaton.cdc.store import log_table_name
from pgbaton.config import Config, OnError
from pgbaton.replica import catalog as cat

log = logging.getLogger(__name__)

CATALOG_TABLES = ("batches", "errors", "sources", "tables")


def _size(conn: Any, ident: sql.Identifier) -> int:
    row = conn.execute("SELECT pg_total_relation_size(to_regclass(%s))", (ident.as_string(conn),)).fetchone()
    return int(row[0] or 0) if row else 0


def maintenance(cfg: Config, source: str | None = None, *,
                retention_seconds: float | None = None) -> list[dict[str, Any]]:
    """Clean up and VACUUM each source's log table (and the catalog tables). Returns per-source figures."""
    names = [source] if source else sorted(cfg.sources)
    schema = cfg.target.catalog_schema
    conn = cat.catalog_connection(cfg, purpose="pgbaton-maintenance")
    results = []
    try:
        for name in names:
            src = cfg.source(name)
            if conn.execute("SELECT 1 FROM sources WHERE name = %s", (name,)).fetchone() is None:
                conn.commit()
                continue
            conn.commit()
            ident = sql.Identifier(schema, log_table_name(name))
            before = _size(conn, ident)
            conn.commit()
            replayer = Replayer(conn, schema, name, OnError.stop, lambda c, b: None)
            keep = src.log_retention_seconds if retention_seconds is None else retention_seconds
            removed = replayer.cleanup(keep)
            replayer.vacuum()
            after = _size(conn, ident)
            conn.commit()
            results.append({"source": name, "batches_removed": removed, "log_bytes_before": before,
                            "log_bytes_after": after})
            log.info("source %s: %d replayed batch(es) removed, log table %d -> %d bytes", name, removed,
                     before, after)
        conn.autocommit = True
        for t in CATALOG_TABLES:
            conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, t)))
    finally:
        conn.close()
    return results
