"""Where the seconds of a failover go: one timeline from the cluster's logs.

Reads, for every node of a test cluster (``running_cluster``, kept with
``PGBATON_KEEP_SANDBOX=1`` or still running), the Pacemaker log (operations requested and
their results, transitions, throttling), the agent's log, the PostgreSQL server log, and
the writer's record of commits. :class:`Logs` reads each file incrementally, so a long
fault run can ask after every fault; :func:`phases` gives the seconds from a fault to the
first time each step was seen. ``scripts/ha_timeline.py`` prints them for a kept sandbox.
"""

from __future__ import annotations

import calendar
import re
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Event:
    at: float               # unix time
    node: str
    source: str             # pacemaker, agent, postgres, writer
    text: str


# step -> (source, pattern): the first event after the fault that matches names the step
STEPS: tuple[tuple[str, str, str], ...] = (
    ("writer_error", "writer", r"^(unknown|err|fail) "),
    ("monitor_failed", "agent", r"monitor: (the primary crashed|crashed-primary|the primary does not answer)"),
    ("demote_start", "pacemaker", r"Requesting local execution of demote operation for pgsql on"),
    ("demote_done", "pacemaker", r"Result of demote operation for pgsql on"),
    ("stop_start", "pacemaker", r"Requesting local execution of stop operation for pgsql on"),
    ("stop_done", "pacemaker", r"Result of stop operation for pgsql on"),
    ("pre_promote_notify", "agent", r"notify pre-promote"),
    ("promote_start", "pacemaker", r"Requesting local execution of promote operation for pgsql on"),
    ("pg_promoted", "postgres", r"selected new timeline ID"),
    ("promote_done", "pacemaker", r"Result of promote operation for pgsql on"),
    ("first_commit", "writer", r"^ok "),
    ("standby_failed", "agent", r"monitor: (timeline divergence|a primary runs but this standby)"),
    ("start_start", "pacemaker", r"Requesting local execution of start operation for pgsql on"),
    ("rewind_done", "agent", r"pg_rewind from"),
    ("rebuild_start", "agent", r"rebuild worker \d+ started"),
    ("start_done", "pacemaker", r"Result of start operation for pgsql on"),
    ("streaming", "postgres", r"started streaming WAL from primary"),
    ("sync_on", "agent", r"synchronous_standby_names: '' -> "),
)
# kept for the printed timeline, not as steps
OTHER = (r"Result of (monitor|notify|probe) operation for pgsql on \S+: (?!ok|Cancelled|promoted)",
         r"Calculated transition", r"throttle|CPU load|CIB load", r"Actions: ",
         r"exited with status \d+ \(execution time", r"database system is ready", r"pg_promote|promoted in")
INTERESTING = re.compile("|".join([p for _, _, p in STEPS] + list(OTHER)))

_PCMK = re.compile(r"^(\w{3} \d{2} \d{2}:\d{2}:\d{2}\.\d{3}) (\S+) +(.*)$")
_AGENT = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}),(\d{3}) (.*)$")
_PG = re.compile(r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2})\.(\d{3}) (\w+) (.*)$")


def _local(text: str, fmt: str) -> float:
    return time.mktime(time.strptime(text, fmt))


@dataclass
class _Source:
    path: Path
    node: str
    kind: str
    offset: int = 0
    rest: str = ""


@dataclass
class Logs:
    """Every interesting line of a test cluster's logs so far (read on from where it stopped)."""

    root: Path
    nodes: tuple[str, ...] = ("node1", "node2")
    events: list[Event] = field(default_factory=list)
    _sources: list[_Source] = field(default_factory=list)
    _year: int = field(default_factory=lambda: time.localtime().tm_year)

    def __post_init__(self) -> None:
        for i, home in enumerate(self.nodes, 1):
            name = f"node{i}"
            self._sources += [_Source(self.root / home / "pacemaker.log", name, "pacemaker"),
                              _Source(self.root / home / "agent.log", name, "agent"),
                              _Source(self.root / home / "pg" / "data.log", name, "postgres")]
        self._sources.append(_Source(self.root / "writer.out", "client", "writer"))

    def read(self) -> list[Event]:
        for src in self._sources:
            try:
                with open(src.path, "rb") as fh:
                    fh.seek(src.offset)
                    chunk = fh.read()
            except OSError:
                continue
            src.offset += len(chunk)
            text = src.rest + chunk.decode(errors="replace")
            lines = text.split("\n")
            src.rest = lines.pop()
            for line in lines:
                event = self._parse(src, line)
                if event is not None:
                    self.events.append(event)
        self.events.sort(key=lambda e: e.at)
        return self.events

    def _parse(self, src: _Source, line: str) -> Event | None:
        if not INTERESTING.search(line):
            return None
        try:
            if src.kind == "pacemaker":
                if "(log_op_output)" in line or " output [ " in line:
                    return None     # the agent's own log has these lines
                m = _PCMK.match(line)
                if not m:
                    return None
                at = _local(f"{self._year} {m.group(1)[:-4]}", "%Y %b %d %H:%M:%S") + int(m.group(1)[-3:]) / 1000
                return Event(at, src.node, src.kind, m.group(3))
            if src.kind == "agent":
                m = _AGENT.match(line)
                if not m:
                    return None
                return Event(_local(m.group(1), "%Y-%m-%d %H:%M:%S") + int(m.group(2)) / 1000, src.node,
                             src.kind, m.group(3))
            if src.kind == "postgres":
                m = _PG.match(line)
                if not m:
                    return None
                stamp = time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
                base = calendar.timegm(stamp) if m.group(3) == "UTC" else time.mktime(stamp)
                return Event(base + int(m.group(2)) / 1000, src.node, src.kind, m.group(4))
            parts = line.split()
            at = float(parts[3] if parts[0] == "ok" else parts[1] if parts[0] == "err" else parts[2])
            return Event(at, src.node, src.kind, line)
        except (ValueError, IndexError, OverflowError):
            return None


def _writer_timeline(event: Event) -> int | None:
    parts = event.text.split()
    return int(parts[4]) if parts[:1] == ["ok"] and len(parts) >= 5 else None


def phases(events: list[Event], since: float, until: float, old_timeline: int | None = None) -> dict[str, float]:
    """Seconds from ``since`` to the first event of each step (steps not seen are left out).

    ``first_commit`` is the first commit on a timeline above ``old_timeline`` (any commit
    when it is None); the steps after the promotion (a failed standby, its rewind or
    rebuild, streaming, synchronous again) count only once the promotion was done.
    """
    window = [e for e in events if since <= e.at <= until]
    found: dict[str, float] = {}
    promoted_at = None
    for name, source, pattern in STEPS:
        rx = re.compile(pattern)
        after = since
        if name in ("standby_failed", "start_start", "rewind_done", "rebuild_start", "start_done", "streaming",
                    "sync_on") and promoted_at is not None:
            after = promoted_at
        for e in window:
            if e.source != source or e.at < after or not rx.search(e.text):
                continue
            if name == "first_commit" and old_timeline is not None and (_writer_timeline(e) or 0) <= old_timeline:
                continue
            found[name] = round(e.at - since, 2)
            break
        if name == "promote_done" and name in found:
            promoted_at = since + found[name]
    return found


def render(events: list[Event], since: float, until: float) -> str:
    """The timeline as text: seconds after ``since``, node, source, what happened."""
    lines, seen = [], set()
    writer_state = None
    for e in events:
        if not since <= e.at <= until:
            continue
        if e.source == "writer":
            state = e.text.split()[0]
            if state == writer_state:
                continue        # one line per change: first error, first commit again
            writer_state = state
        key = (round(e.at, 2), e.text)
        if key in seen:         # the scheduler's lines come twice (log and detail)
            continue
        seen.add(key)
        lines.append(f"{e.at - since:+8.3f}  {e.node:6s} {e.source:9s} {e.text[:170]}")
    return "\n".join(lines)
