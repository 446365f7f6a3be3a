"""``status``: per database state, tables synced / total, lag in bytes and seconds."""

from __future__ import annotations

import time
from typing import Any

from psycopg.rows import dict_row

from pgbaton.config import Config, MigrationConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate import sqlfiles
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.lifecycle import Command, State, admit
from pgbaton.migrate.model import DbState, DbStatus
from pgbaton.migrate.names import object_name
from pgbaton.migrate.probe import connect, db_progress
from pgbaton.migrate.steps import db_state
from pgbaton.migrate.streams import FWD, REV, publisher, stream_status


def _lag(cfg: MigrationConfig, name: str, db: str) -> dict[str, object] | None:
    with connect(cfg.source, "source", db) as s, s.cursor(row_factory=dict_row) as cur:
        return cur.execute(sqlfiles.query("slot_lag"), {"slot": object_name(name, db)}).fetchone()


def _errors(cfg: MigrationConfig, name: str, db: str) -> list[str]:
    with connect(cfg.target, "target", db) as t:
        row = t.execute("SELECT apply_error_count, sync_error_count FROM pg_stat_subscription_stats "
                        "WHERE subname = %s", (object_name(name, db),)).fetchone()
    if not row or not (row[0] or row[1]):
        return []
    return [f"{row[0]} apply error(s), {row[1]} table sync error(s): see the target's server log"]


def status(config: Config, name: str) -> list[DbStatus]:
    """Per database, the stream that runs now: forward before a switchover, reverse after it."""
    cfg = config.migration(name)
    out: list[DbStatus] = []
    with connect(cfg.target, "target") as t:
        catalog = Catalog(t, cfg.options.catalog_schema, name)
        state = catalog.state()
        admission = admit(Command.status, state, name)
        if not admission.act:
            raise PgbatonError(admission.message)
        if state in (State.switched, State.switching_back):  # clients on the target: the reverse stream
            return [stream_status(cfg, name, db, REV) for db in cfg.databases]
        for db in cfg.databases:
            p = db_progress(cfg, name, db, catalog)
            lag = _lag(cfg, name, db) if p.slot_exists else None
            lag_bytes = int(lag["lag_bytes"]) if lag and lag["lag_bytes"] is not None else None  # type: ignore[call-overload]
            seconds = lag["replay_lag_seconds"] if lag else None
            if seconds is None and lag_bytes == 0:
                seconds = 0.0  # caught up: nothing in flight
            out.append(DbStatus(db, db_state(p), p.tables_synced, p.tables_total, lag_bytes,
                                float(seconds) if seconds is not None else None,  # type: ignore[arg-type]
                                str(lag["source_lsn"]) if lag else None,
                                str(lag["confirmed_flush_lsn"]) if lag and lag["confirmed_flush_lsn"] else None,
                                _errors(cfg, name, db) if p.subscription_exists else []))
    return out


def migration_state(config: Config, name: str) -> str:
    """The stored state of the migration (``lifecycle.State``)."""
    cfg = config.migration(name)
    with connect(cfg.target, "target") as t:
        return Catalog(t, cfg.options.catalog_schema, name).state().value


def switch_history(config: Config, name: str, limit: int = 20) -> list[dict[str, Any]]:
    """The migration's last ``limit`` switches, oldest first: direction, started_at, ended_at,
    paused_seconds, outcome (running, complete, rolled_back, cancelled), reason, and per database
    the seconds of each step."""
    cfg = config.migration(name)
    with connect(cfg.target, "target") as t:
        catalog = Catalog(t, cfg.options.catalog_schema, name)
        return catalog.switch_history(limit) if catalog.exists() else []


def wait_synced(config: Config, name: str, timeout: float | None = None) -> None:
    """Until every table is synced and the subscriber has applied the publisher's WAL position read now.

    Copies that ``start`` queued (``pace``) are begun here as room frees, as `migrate run` does.

    Before a switchover: the target and the source; after it, the reverse stream (source and target).
    """
    cfg = config.migration(name)
    deadline = time.monotonic() + (timeout or cfg.options.sync_timeout_seconds)
    targets: dict[str, str] = {}
    while True:
        rows = status(config, name)
        if any(r.state is DbState.queued for r in rows):
            from pgbaton.migrate.execute import release_queued  # their copies, as room frees

            release_queued(config, name)
        pending = [r for r in rows if r.state is not DbState.streaming]
        if not pending:
            for r in rows:
                targets.setdefault(r.database, r.source_lsn or "0/0")
            direction = REV if rows and rows[0].direction == "reverse" else FWD
            if all(_applied(cfg, name, db, lsn, direction) for db, lsn in targets.items()):
                return
        if time.monotonic() > deadline:
            raise PgbatonError(f"migration {name}: not caught up after the timeout: "
                               + ", ".join(f"{r.database} {r.state.value} {r.tables_synced}/{r.tables_total}"
                                           for r in rows))
        time.sleep(0.2)


def _applied(cfg: MigrationConfig, name: str, db: str, lsn: str, direction: str = FWD) -> bool:
    pub = publisher(cfg, direction)
    with connect(pub.cluster, pub.name, db) as s:
        row = s.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = %s",
                        (lsn, object_name(name, db, direction))).fetchone()
    return bool(row and row[0])
