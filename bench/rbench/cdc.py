"""CDC measurements that do not depend on the tool under test.

Every figure comes from the databases, not from the tool's own status:

* idle latency: a single-row insert on an idle source; the target is polled
  every 10 ms until the row is there;
* live burst: while sysbench oltp_write_only runs, a heartbeat thread bumps
  ``bench_marker.seq`` on the source every 50 ms and remembers when each value
  was committed; a poller reads the value on the target every 20 ms.  The lag
  at a poll is the age of the oldest heartbeat not yet visible (0 when the
  newest one is).  After sysbench ends a last marker value is written; the tool
  has caught up when that value is visible *and* all sysbench tables have the
  same checksums on both sides;
* backlog drain: the tool is stopped, the same burst runs, the tool is started
  again; drain rate = row changes / (start -> caught up).

Row changes are counted by MariaDB (information_schema.TABLE_STATISTICS, userstat=ON).
"""

from __future__ import annotations

import contextlib
import logging
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import psycopg
from psycopg import sql

from .env import BenchEnv, BurstResult
from .verify import MARKER, wait_equal

log = logging.getLogger(__name__)

HEARTBEAT_S = 0.05
POLL_S = 0.02


class ReplicaTool(Protocol):
    """A replication tool as the CDC measurements see it."""

    name: str
    dbname: str  # target database
    schema: str  # schema of the sysbench tables in it

    def start_cdc(self) -> None: ...

    def stop_cdc(self) -> None: ...

    def status(self) -> dict[str, Any] | None: ...


@dataclass
class IdleResult:
    probes_s: list[float]

    @property
    def median_s(self) -> float:
        return statistics.median(self.probes_s)

    @property
    def max_s(self) -> float:
        return max(self.probes_s)


@dataclass
class LiveResult:
    burst_s: float
    row_changes: int
    source_rate: float  # row changes/s that sysbench produced
    max_lag_s: float  # largest lag seen between burst start and caught up
    max_lag_during_burst_s: float  # same, only while sysbench ran
    catch_up_after_burst_s: float  # burst end -> caught up
    e2e_rate: float  # row changes / (burst start -> caught up)
    verified: str
    lag_samples: list[tuple[float, float]] = field(default_factory=list, repr=False)  # (s since burst start, lag)


@dataclass
class BacklogResult:
    row_changes: int
    burst_s: float
    drain_s: float  # tool start -> caught up
    drain_rate: float  # row changes / drain_s
    first_change_s: float  # tool start -> first change of the backlog visible (start-up cost)
    rate_after_first: float  # row changes / (first change visible -> caught up)
    verified: str


def _target_marker(conn: psycopg.Connection[Any], schema: str, row_id: int) -> int | None:
    query = sql.SQL("SELECT seq FROM {} WHERE id = %s").format(sql.Identifier(schema, MARKER))
    row = conn.execute(query, (row_id,)).fetchone()
    return None if row is None else int(row[0])


class Markers:
    """Writes marker values on the source and waits for them on the target."""

    def __init__(self, env: BenchEnv, tool: ReplicaTool) -> None:
        self.env = env
        self.tool = tool
        self._conn: psycopg.Connection[Any] | None = None
        with env.mysql() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT seq FROM {MARKER} WHERE id = 1")
            self.seq = int(cur.fetchone()[0])  # type: ignore[index]
            cur.execute(f"SELECT COALESCE(MAX(id), 1000) FROM {MARKER}")
            self.next_probe_id = max(1000, int(cur.fetchone()[0])) + 1  # type: ignore[index]

    def bump(self) -> int:
        self.seq += 1
        with self.env.mysql() as conn, conn.cursor() as cur:
            cur.execute(f"UPDATE {MARKER} SET seq = %s WHERE id = 1", (self.seq,))
        return self.seq

    def wait_seq(self, seq: int, timeout: float, poll: float = 0.01) -> float:
        """Poll the target until marker row 1 has reached ``seq``; return the monotonic time it was seen."""
        return self._wait(1, lambda v: v is not None and v >= seq, timeout, poll, f"marker seq {seq}")

    def probe_idle(self, timeout: float) -> float:
        """Insert one row on the source, return seconds until it is visible on the target."""
        row_id = self.next_probe_id
        self.next_probe_id += 1
        self._target()  # connected before the clock starts
        t0 = time.monotonic()
        with self.env.mysql() as conn, conn.cursor() as cur:
            cur.execute(f"INSERT INTO {MARKER} (id, seq, note) VALUES (%s, 0, 'idle probe')", (row_id,))
        seen = self._wait(row_id, lambda v: v is not None, timeout, 0.01, f"idle probe row {row_id}")
        return seen - t0

    def _target(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = self.env.pg_conn(self.tool.dbname)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _wait(self, row_id: int, done: Any, timeout: float, poll: float, what: str) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if done(_target_marker(self._target(), self.tool.schema, row_id)):
                    return time.monotonic()
            except psycopg.Error:  # the target is restarting or the table is being swapped in
                self.close()
            time.sleep(poll)
        raise TimeoutError(f"{self.tool.name}: {what} not visible on the target within {timeout:.0f} s")


class _Heartbeat(threading.Thread):
    """Bumps the marker on the source every HEARTBEAT_S; records each commit time."""

    def __init__(self, markers: Markers) -> None:
        super().__init__(daemon=True, name="heartbeat")
        self.markers = markers
        self.committed: dict[int, float] = {}
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with self.markers.env.mysql() as conn, conn.cursor() as cur:
                while not self.stop_event.is_set():
                    seq = self.markers.seq + 1
                    cur.execute(f"UPDATE {MARKER} SET seq = %s WHERE id = 1", (seq,))
                    self.committed[seq] = time.monotonic()
                    self.markers.seq = seq
                    self.stop_event.wait(HEARTBEAT_S)
        except BaseException as exc:  # reported by the caller
            self.error = exc


class _Poller(threading.Thread):
    """Reads the marker on the target every POLL_S; records (time, value)."""

    def __init__(self, env: BenchEnv, tool: ReplicaTool) -> None:
        super().__init__(daemon=True, name="poller")
        self.env = env
        self.tool = tool
        self.samples: list[tuple[float, int]] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        while not self.stop_event.is_set():
            try:
                if conn is None or conn.closed:
                    conn = self.env.pg_conn(self.tool.dbname)
                value = _target_marker(conn, self.tool.schema, 1)
                if value is not None:
                    self.samples.append((time.monotonic(), value))
            except psycopg.Error:
                if conn is not None:
                    conn.close()
                conn = None
            self.stop_event.wait(POLL_S)
        if conn is not None:
            conn.close()


def _lags(samples: list[tuple[float, int]], committed: dict[int, float]) -> list[tuple[float, float]]:
    """(time, lag) per poll: age of the oldest committed heartbeat the target had not shown yet."""
    result = []
    for t, seen in samples:
        pending = committed.get(seen + 1)
        result.append((t, t - pending if pending is not None and pending < t else 0.0))
    return result


def measure_idle(env: BenchEnv, tool: ReplicaTool, probes: int = 5, pause: float = 1.0) -> IdleResult:
    with contextlib.closing(Markers(env, tool)) as markers:
        times = []
        for _ in range(probes):
            time.sleep(pause)  # let the source be idle
            times.append(markers.probe_idle(timeout=60))
        return IdleResult(times)


def _caught_up(env: BenchEnv, tool: ReplicaTool, markers: Markers, end_seq: int,
               timeout: float) -> tuple[float, str]:
    """Monotonic time at which the target had everything up to ``end_seq`` and equal checksums."""
    t_marker = markers.wait_seq(end_seq, timeout=timeout)
    t_equal, comparison, attempts = wait_equal(env, tool.dbname, tool.schema, timeout=120)
    # the first comparison after the marker was equal: the marker time counts; else the start of the equal check
    caught = t_marker if attempts == 1 else t_equal
    verified = comparison.describe() + ("" if attempts == 1 else f" (after {attempts} checks: marker came early)")
    return caught, verified


def measure_live(env: BenchEnv, tool: ReplicaTool, seconds: int, tps: int, timeout: float = 900) -> LiveResult:
    with contextlib.closing(Markers(env, tool)) as markers:
        markers.wait_seq(markers.bump(), timeout=120)  # the tool is replicating
        heartbeat = _Heartbeat(markers)
        poller = _Poller(env, tool)
        poller.start()
        heartbeat.start()
        try:
            burst: BurstResult = env.burst(seconds, tps)
        finally:
            heartbeat.stop_event.set()
            heartbeat.join(timeout=10)
        if heartbeat.error is not None:
            poller.stop_event.set()
            raise RuntimeError(f"heartbeat failed: {heartbeat.error}")
        end_seq = markers.bump()
        heartbeat.committed[end_seq] = time.monotonic()
        try:
            caught, verified = _caught_up(env, tool, markers, end_seq, timeout)
        finally:
            poller.stop_event.set()
            poller.join(timeout=10)
        lags = [(t, lag) for t, lag in _lags(poller.samples, heartbeat.committed) if burst.started <= t <= caught]
        during = [lag for t, lag in lags if t <= burst.ended]
        return LiveResult(
            burst_s=burst.seconds,
            row_changes=burst.row_changes,
            source_rate=burst.changes_per_s,
            max_lag_s=max((lag for _, lag in lags), default=0.0),
            max_lag_during_burst_s=max(during, default=0.0),
            catch_up_after_burst_s=max(0.0, caught - burst.ended),
            e2e_rate=burst.row_changes / (caught - burst.started),
            verified=verified,
            lag_samples=[(round(t - burst.started, 3), round(lag, 3)) for t, lag in lags],
        )


def measure_backlog(env: BenchEnv, tool: ReplicaTool, seconds: int, tps: int, timeout: float = 900) -> BacklogResult:
    """Stop the tool, run the burst, start the tool: how fast does it drain the backlog?"""
    with contextlib.closing(Markers(env, tool)) as markers:
        tool.stop_cdc()
        first_seq = markers.bump()  # the first change of the backlog
        burst = env.burst(seconds, tps)
        end_seq = markers.bump()  # and the last
        t0 = time.monotonic()
        tool.start_cdc()
        t_first = markers.wait_seq(first_seq, timeout=timeout)
        caught, verified = _caught_up(env, tool, markers, end_seq, timeout)
        drain = caught - t0
        return BacklogResult(row_changes=burst.row_changes, burst_s=burst.seconds, drain_s=drain,
                             drain_rate=burst.row_changes / drain, first_change_s=t_first - t0,
                             rate_after_first=burst.row_changes / max(caught - t_first, 1e-3), verified=verified)


def as_dict(result: Any) -> dict[str, Any]:
    data = asdict(result)
    for name in ("median_s", "max_s"):
        if hasattr(result, name):
            data[name] = getattr(result, name)
    return data
