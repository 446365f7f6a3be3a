"""`status` and `errors`: what a replica is doing, from the catalog and the source.

Definitions (also in docs/replica.md):
- read lag: how far the binlog reader is behind the source.  Zero when the reader
  has reached the source's binlog head (seen through heartbeats or a direct look
  at the source); otherwise the age of the last source event it stored.
- replay lag: how long the oldest stored but not yet replayed batch has waited.
- pending events: row changes stored and not yet replayed.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import psycopg

from pgbaton.config import Config
from pgbaton.errors import PgbatonError
from pgbaton.mysql.model import MyTable
from pgbaton.mysql.snapshot import binlog_head
from pgbaton.replica import catalog as cat
from pgbaton.replica import notcarried
from pgbaton.replica.init import mysql_connect


def _age(ts: datetime | None, now: float) -> float | None:
    return None if ts is None else max(0.0, now - ts.timestamp())


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def source_status(cfg: Config, conn: psycopg.Connection, name: str, *, probe_source: bool = True) -> dict[str, Any]:
    src = cfg.source(name)
    row = conn.execute(
        """SELECT state, read_file, read_pos, read_gtid, last_event_at, last_read_at, rows_replayed,
                  replayed_at, head_file, head_pos, reader_pid, reader_host, snapshot_file, snapshot_pos
             FROM sources WHERE name = %s""", (name,)).fetchone()
    if row is None:
        return {"source": name, "state": "not registered", "running": False}
    (state, read_file, read_pos, read_gtid, last_event_at, last_read_at, rows_replayed, replayed_at,
     head_file, head_pos, reader_pid, reader_host, snap_file, snap_pos) = row
    pend = conn.execute(
        """SELECT count(*), coalesce(sum(n_events), 0), min(written_at) FROM batches
            WHERE source = %s AND status = 'closed'""", (name,)).fetchone()
    assert pend is not None
    tabs = conn.execute(
        "SELECT state, count(*) FROM tables WHERE source = %s GROUP BY state", (name,)).fetchall()
    nerr = conn.execute("SELECT count(*) FROM errors WHERE source = %s", (name,)).fetchone()
    restarts = conn.execute("SELECT restarts FROM sources WHERE name = %s", (name,)).fetchone()
    prepared = conn.execute("SELECT count(*) FROM batches WHERE source = %s AND status = 'prepared'",
                            (name,)).fetchone()
    fks = conn.execute(
        """SELECT child_db || '.' || child_table || '.' || name || ' -> ' || parent_db || '.' || parent_table
                  || ' (ON DELETE ' || on_delete || ' ON UPDATE ' || on_update || ')'
             FROM foreign_keys WHERE source = %s
              AND (on_delete IN ('CASCADE', 'SET NULL') OR on_update IN ('CASCADE', 'SET NULL'))
            ORDER BY 1""", (name,)).fetchall()
    running = cat.lock_holder(conn, name) is not None and state == "running"
    conn.commit()
    now = time.time()
    live_head = None
    source_error = None
    not_carried = None
    if probe_source:
        try:
            my = mysql_connect(src)
            try:
                live_head = binlog_head(my)
                if state not in ("new", "initializing"):
                    not_carried = notcarried.listing(conn, my, src)
            finally:
                my.close()
        except PgbatonError as exc:
            source_error = str(exc)
    h_file, h_pos = (live_head.file, live_head.pos) if live_head else (head_file, head_pos)
    read_at_head = read_file is not None and (read_file, read_pos) == (h_file, h_pos)
    heard_recently = last_read_at is not None and now - last_read_at.timestamp() < 3 * src.heartbeat_seconds + 1
    heartbeat_at_head = running and heard_recently and (head_file, head_pos) == (h_file, h_pos)
    read_lag_bytes = None
    if h_file is not None and read_file == h_file and read_pos is not None and h_pos is not None:
        read_lag_bytes = max(0, int(h_pos) - int(read_pos))
    if state in ("new", "initializing"):
        read_lag = None
    elif read_at_head or heartbeat_at_head:
        read_lag = 0.0
    else:
        read_lag = _age(last_event_at, now)
    replay_lag = _age(pend[2], now) if pend[0] else 0.0
    counts = {s: int(n) for s, n in tabs}
    out: dict[str, Any] = {
        "source": name,
        "state": state,
        "running": running,
        "reader_pid": reader_pid if running else None,
        "reader_host": reader_host if running else None,
        "read_position": f"{read_file}:{read_pos}" if read_file else None,
        "read_gtid": read_gtid,
        "source_head": f"{h_file}:{h_pos}" if h_file else None,
        "snapshot_position": f"{snap_file}:{snap_pos}" if snap_file else None,
        "read_lag_s": None if read_lag is None else round(read_lag, 3),
        "read_lag_bytes": read_lag_bytes,
        "replay_lag_s": round(replay_lag or 0.0, 3),
        "pending_batches": int(pend[0]),
        "pending_events": int(pend[1]),
        "last_event_at": _iso(last_event_at),
        "last_read_at": _iso(last_read_at),
        "last_replay_at": _iso(replayed_at),
        "rows_replayed": int(rows_replayed),
        "tables_replicated": counts.get("replicating", 0),
        "tables_disabled": counts.get("disabled", 0),
        "tables_copying": counts.get("copying", 0),
        "errors": int(nerr[0]) if nerr else 0,
        # XA transactions prepared on the source and stored, waiting for their XA COMMIT/ROLLBACK
        "xa_prepared": int(prepared[0]) if prepared else 0,
        # how often the supervisor started the replica again after an outage
        "restarts": int(restarts[0]) if restarts else 0,
        # foreign keys whose actions replay reproduces (InnoDB does not log the child rows)
        "cascading_foreign_keys": [r[0] for r in fks],
    }
    if source_error:
        out["source_error"] = source_error
    if not_carried is not None:     # views, triggers, routines, events the replica does not have
        out["not_carried"] = not_carried
    return out


def status(cfg: Config, source: str | None = None, *, probe_source: bool = True) -> list[dict[str, Any]]:
    names = [source] if source else sorted(cfg.sources)
    if source:
        cfg.source(source)
    conn = cat.catalog_connection(cfg, purpose="pgbaton-status")
    try:
        return [source_status(cfg, conn, n, probe_source=probe_source) for n in names]
    finally:
        conn.close()


def table_status(cfg: Config, source: str) -> list[dict[str, Any]]:
    conn = cat.catalog_connection(cfg, purpose="pgbaton-status")
    try:
        rows = conn.execute(
            """SELECT src_db, src_table, dst_schema, dst_table, state, rows_copied, disabled_reason,
                      cardinality(pk_cols) = 0, sync_file || ':' || sync_pos, synced_at, rows_replayed,
                      definition
                 FROM tables WHERE source = %s ORDER BY src_db, src_table""", (source,)).fetchall()
    finally:
        conn.close()
    # renamed_columns: MySQL name -> PostgreSQL name where they differ (mysql/names.py)
    return [{"source_table": f"{r[0]}.{r[1]}", "target_table": f"{r[2]}.{r[3]}", "state": r[4],
             "rows_copied": r[5], "last_error": r[6], "row_match": bool(r[7]), "sync_position": r[8],
             "synced_at": _iso(r[9]), "rows_replayed": int(r[10]),
             "renamed_columns": cat.renamed_columns(MyTable.from_json(r[11]))} for r in rows]


def errors(cfg: Config, source: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    conn = cat.catalog_connection(cfg, purpose="pgbaton-errors")
    try:
        rows = conn.execute(
            """SELECT e.id, e.source, e.at, e.kind, t.src_db || '.' || t.src_table, e.batch_id, e.message, e.change
                 FROM errors e LEFT JOIN tables t ON t.id = e.table_id
                WHERE %(s)s::text IS NULL OR e.source = %(s)s
                ORDER BY e.id DESC LIMIT %(n)s""", {"s": source, "n": limit}).fetchall()
    finally:
        conn.close()
    return [{"id": r[0], "source": r[1], "at": _iso(r[2]), "kind": r[3], "table": r[4], "batch_id": r[5],
             "message": r[6], "change": r[7]} for r in rows]
