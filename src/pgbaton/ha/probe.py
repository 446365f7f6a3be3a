"""Looking at PostgreSQL over SQL and the replication protocol."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pgbaton.ha.config import NodeConfig
from pgbaton.ha.model import Position, PrimaryView, ReplicaStat, TimelineFork, parse_lsn

if TYPE_CHECKING:
    import psycopg
else:
    from pgbaton.ha import lazy_psycopg as psycopg

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


_SEGMENT = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})(\.partial)?$")


def segment_timeline(lsn: int, segment_size: int, names: Iterable[str]) -> int | None:
    """The highest timeline that has a WAL segment file holding ``lsn``, from pg_wal's file names.

    WAL received or written on a timeline goes to segment files named after it, so this is
    the timeline a standby's last WAL came on, whether its WAL receiver still runs or not
    (the control file's checkpoint timeline can be several switches old).
    """
    if segment_size <= 0:
        return None
    segno = (max(lsn, 1) - 1) // segment_size   # an LSN at a segment boundary ends the previous one
    per_id = 0x100000000 // segment_size
    wanted = (f"{segno // per_id:08X}", f"{segno % per_id:08X}")
    found = [int(m.group(1), 16) for m in map(_SEGMENT.match, names) if m and (m.group(2), m.group(3)) == wanted]
    return max(found, default=None)


def local_history(pgdata: Path, timeline: int) -> tuple[TimelineFork, ...]:
    """The forks that led to ``timeline``, from its history file in pg_wal (none for timeline 1)."""
    if timeline <= 1:
        return ()
    try:
        return parse_history((pgdata / "pg_wal" / f"{timeline:08X}.history").read_text(encoding="ascii"))
    except (OSError, ValueError):
        return ()


def local_position(conn: psycopg.Connection, pgdata: Path) -> Position:
    """The furthest WAL this instance holds: received WAL for a standby, flushed WAL for a primary.

    The timeline of a standby is the highest of: its WAL receiver's, the control file's, and
    the one of the pg_wal segment holding that position; the position carries the history
    of its timeline, so positions on different timelines compare by content.
    """
    recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()
    if recovery is not None and not recovery[0]:
        row = conn.execute(
            "SELECT pg_current_wal_flush_lsn()::text, pg_walfile_name(pg_current_wal_flush_lsn())"
        ).fetchone()
        assert row is not None
        tli = int(str(row[1])[:8], 16)
        return Position(tli, parse_lsn(str(row[0])), local_history(pgdata, tli))
    row = conn.execute(
        "SELECT greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::text,"
        " greatest((SELECT received_tli FROM pg_stat_wal_receiver),"
        "          (SELECT timeline_id FROM pg_control_checkpoint()),"
        "          (SELECT min_recovery_end_timeline FROM pg_control_recovery())),"
        " (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size')"
    ).fetchone()
    if row is None or row[0] is None:
        raise psycopg.DataError("standby has no WAL position yet")
    lsn = parse_lsn(str(row[0]))
    try:
        names = [p.name for p in (pgdata / "pg_wal").iterdir()]
    except OSError:
        names = []
    tli = max(int(row[1] or 0), segment_timeline(lsn, int(row[2] or 0), names) or 0)
    return Position(tli, lsn, local_history(pgdata, tli))


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """Whether something listens at host:port (a running server), without logging in."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def receiving(conn: psycopg.Connection) -> bool:
    row = conn.execute("SELECT count(*) FROM pg_stat_wal_receiver WHERE status = 'streaming'").fetchone()
    return bool(row and row[0])


def replicas(conn: psycopg.Connection) -> list[ReplicaStat]:
    rows = conn.execute(
        "SELECT application_name, state, sync_state, flush_lsn::text FROM pg_stat_replication"
    ).fetchall()
    return [ReplicaStat(str(r[0]), str(r[1]), str(r[2]), parse_lsn(r[3]) if r[3] else None) for r in rows]
