"""Table states: disable a table (its changes are no longer stored or applied) and enable it
again (a disabled table missed changes, so enabling re-copies it with sync_tables)."""

from __future__ import annotations

import logging

from pgbaton.config import Config
from pgbaton.errors import PgbatonError
from pgbaton.replica import catalog as cat
from pgbaton.replica.sync import SyncResult, sync_tables

log = logging.getLogger(__name__)


def disable_tables(cfg: Config, source: str, names: list[str], reason: str = "disabled by the user") -> list[str]:
    """Stop replicating ``names`` (db.table or table). Safe to rerun. Returns the tables disabled now."""
    cfg.source(source)
    conn = cat.catalog_connection(cfg, purpose=f"pgbaton-tables-{source}")
    try:
        cat.source_row(conn, source)
        with conn.transaction():
            rows = conn.execute(
                "SELECT id, src_db, src_table, state FROM tables WHERE source = %s ORDER BY id", (source,)).fetchall()
            chosen = []
            for n in names:
                hit = [r for r in rows if f"{r[1]}.{r[2]}" == n or r[2] == n]
                if not hit:
                    raise PgbatonError(f"source {source} has no table {n}")
                if len(hit) > 1:
                    raise PgbatonError(f"table {n} is ambiguous: write db.table")
                chosen.append(hit[0])
            changed = [r for r in chosen if r[3] != "disabled"]
            if changed:
                conn.execute(
                    """UPDATE tables SET state = 'disabled', disabled_reason = %s, disabled_at = now()
                        WHERE id = ANY(%s)""", (reason, [r[0] for r in changed]))
                conn.execute("UPDATE sources SET tables_version = tables_version + 1 WHERE name = %s", (source,))
    finally:
        conn.close()
    done = [f"{r[1]}.{r[2]}" for r in changed]
    if done:
        log.info("source %s: disabled %s", source, ", ".join(done))
    return done


def enable_tables(cfg: Config, source: str, names: list[str]) -> SyncResult:
    """Replicate ``names`` again: they are copied from a fresh snapshot and follow the stream."""
    return sync_tables(cfg, source, names)
