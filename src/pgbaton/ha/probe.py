"""Looking at PostgreSQL over SQL and the replication protocol."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import psycopg

from pgbaton.ha.config import NodeConfig
from pgbaton.ha.model import Position, PrimaryView, ReplicaStat, TimelineFork, parse_lsn

log = logging.getLogger(__name__)


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_history(text: str) -> tuple[TimelineFork, ...]:
    """A timeline history file: ``<parent tli> <switch lsn> <reason>`` per line."""
    forks = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].isdigit():
            forks.append(TimelineFork(int(parts[0]), parse_lsn(parts[1])))
    return tuple(forks)


def primary_view(cfg: NodeConfig, host: str, port: int) -> PrimaryView | None:
    """The server at host:port if it is a primary (over a physical replication connection)."""
    try:
        with psycopg.connect(cfg.remote_dsn(host, port, replication=True), autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute("SHOW in_hot_standby")
            row = cur.fetchone()
            if row is None or _text(row[0]) != "off":
                return None
            cur.execute("IDENTIFY_SYSTEM")
            ident = cur.fetchone()
            if ident is None:
                return None
            sysid, tli, xlogpos = _text(ident[0]), int(ident[1]), parse_lsn(_text(ident[2]))
            history: tuple[TimelineFork, ...] = ()
            if tli > 1:
                cur.execute(f"TIMELINE_HISTORY {tli:d}")
                hist = cur.fetchone()
                history = parse_history(_text(hist[1])) if hist else ()
            return PrimaryView(sysid, tli, xlogpos, history)
    except psycopg.Error as exc:
        log.debug("no primary at %s:%s: %s", host, port, str(exc).strip().splitlines()[0] if str(exc) else exc)
        return None


@dataclass(frozen=True)
class FoundPrimary:
    node: str
    host: str
    port: int
    view: PrimaryView


def find_primary(cfg: NodeConfig) -> FoundPrimary | None:
    """The peer that runs as a primary right now, if any."""
    candidates = list(cfg.peers.items())
    if cfg.primary_host:
        candidates.insert(0, ("(primary_host)", (cfg.primary_host, cfg.port)))
    for node, (host, port) in candidates:
        view = primary_view(cfg, host, port)
        if view is not None:
            return FoundPrimary(node, host, port, view)
    return None


def local_position(conn: psycopg.Connection) -> Position:
    """The furthest WAL this instance holds: received WAL for a standby, flushed WAL for a primary."""
    recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    if recovery is not None and not recovery[0]:
        row = conn.execute(
            "SELECT pg_current_wal_flush_lsn()::text, pg_walfile_name(pg_current_wal_flush_lsn())"
        ).fetchone()
        assert row is not None
        return Position(int(str(row[1])[:8], 16), parse_lsn(str(row[0])))
    row = conn.execute(
        "SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text,"
        " greatest((SELECT received_tli FROM pg_stat_wal_receiver),"
        "          (SELECT timeline_id FROM pg_control_checkpoint()),"
        "          (SELECT min_recovery_end_timeline FROM pg_control_recovery()))"
    ).fetchone()
    if row is None or row[0] is None:
        raise psycopg.DataError("standby has no WAL position yet")
    return Position(int(row[1] or 0), parse_lsn(str(row[0])))


def receiving(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").fetchone()
    return bool(row and row[0])


def replicas(conn: psycopg.Connection) -> list[ReplicaStat]:
    rows = conn.execute(
        "SELECT application_name, state, sync_state, flush_lsn::text FROM pg_stat_replication"
    ).fetchall()
    return [ReplicaStat(str(r[0]), str(r[1]), str(r[2]), parse_lsn(r[3]) if r[3] else None) for r in rows]
