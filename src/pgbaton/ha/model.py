"""Observed state of PostgreSQL nodes, as plain frozen values.

Everything here is data: the executors fill these in, the decisions in ``decide`` read them.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

_LSN = re.compile(r"^([0-9A-Fa-f]{1,8})/([0-9A-Fa-f]{1,8})$")


def parse_lsn(text: str) -> int:
    """``'0/3000060'`` -> 50331744."""
    match = _LSN.match(text.strip())
    if not match:
        raise ValueError(f"not an LSN: {text!r}")
    return (int(match.group(1), 16) << 32) | int(match.group(2), 16)


def format_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class TimelineFork:
    """One line of a timeline history file: ``timeline`` ended at ``switch_lsn``."""

    timeline: int
    switch_lsn: int


@dataclass(frozen=True)
class Position:
    """Where a node's WAL ends: a timeline and an LSN, with the history of that timeline.

    Two positions on different timelines are compared through the newer one's history:
    the older timeline's WAL is a prefix of the newer one when it ends at or before the
    point where the newer history left that timeline; then the LSNs decide.  WAL past that
    point diverged: the newer timeline wins (the other node must be rewound).  Without the
    history the timeline decides.
    """

    timeline: int
    lsn: int
    forks: tuple[TimelineFork, ...] = field(default=(), compare=False)

    def compare(self, other: Position) -> int:
        """1 when this position holds more WAL than ``other``, -1 when less, 0 when the same."""
        if self.timeline == other.timeline:
            return (self.lsn > other.lsn) - (self.lsn < other.lsn)
        newer, older, sign = (self, other, 1) if self.timeline > other.timeline else (other, self, -1)
        switch = {f.timeline: f.switch_lsn for f in newer.forks}.get(older.timeline)
        if switch is None or older.lsn > switch:
            return sign                     # unknown history, or the older one diverged: newer wins
        return sign * ((newer.lsn > older.lsn) - (newer.lsn < older.lsn))

    def __lt__(self, other: Position) -> bool:
        return self.compare(other) < 0

    def __gt__(self, other: Position) -> bool:
        return self.compare(other) > 0

    def __le__(self, other: Position) -> bool:
        return self.compare(other) <= 0

    def __ge__(self, other: Position) -> bool:
        return self.compare(other) >= 0

    def encode(self) -> str:
        """``3:0/5000028`` or, with a history, ``3:0/5000028;1@0/3000198,2@0/4000000``."""
        text = f"{self.timeline}:{format_lsn(self.lsn)}"
        if self.forks:
            text += ";" + ",".join(f"{f.timeline}@{format_lsn(f.switch_lsn)}" for f in self.forks)
        return text

    @classmethod
    def decode(cls, text: str) -> Position:
        head, _, history = text.strip().partition(";")
        tli, _, lsn = head.partition(":")
        forks = []
        for item in history.split(","):
            fork_tli, sep, switch = item.partition("@")
            if sep:
                forks.append(TimelineFork(int(fork_tli), parse_lsn(switch)))
        return cls(int(tli), parse_lsn(lsn), tuple(forks))


class ClusterState(enum.Enum):
    """``Database cluster state`` of pg_controldata."""

    STARTING = "starting up"
    SHUT_DOWN = "shut down"
    SHUT_DOWN_IN_RECOVERY = "shut down in recovery"
    SHUTTING_DOWN = "shutting down"
    CRASH_RECOVERY = "in crash recovery"
    ARCHIVE_RECOVERY = "in archive recovery"
    IN_PRODUCTION = "in production"


class Role(enum.Enum):
    """What a local instance is, as a monitor sees it."""

    STOPPED = "stopped"            # cleanly shut down, restartable
    STANDBY = "standby"            # running in recovery
    PRIMARY = "primary"            # running, accepting writes
    CRASHED_PRIMARY = "crashed-primary"  # not running, but was a primary when it died
    CRASHED_STANDBY = "crashed-standby"  # not running, died while in recovery
    REBUILDING = "rebuilding"      # a basebackup worker is filling the data directory
    REBUILD_FAILED = "rebuild-failed"
    UNUSABLE = "unusable"          # no valid data directory


class SyncMode(enum.Enum):
    SYNC = "sync"
    ASYNC = "async"


class DataDir(enum.Enum):
    """Whether a data directory can be started as it is."""

    EMPTY = "empty"          # missing or empty: build it
    USABLE = "usable"        # control file readable
    BROKEN = "broken"        # files present but no readable control file


class RebuildStatus(enum.Enum):
    NONE = "none"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class ControlData:
    """The parts of pg_controldata the decisions need."""

    state: ClusterState
    system_id: str
    checkpoint_lsn: int
    checkpoint_timeline: int
    min_recovery_lsn: int = 0
    min_recovery_timeline: int = 0
    checksums: bool = False

    @property
    def clean(self) -> bool:
        return self.state in (ClusterState.SHUT_DOWN, ClusterState.SHUT_DOWN_IN_RECOVERY)

    @property
    def was_primary(self) -> bool:
        return self.state in (ClusterState.IN_PRODUCTION, ClusterState.SHUT_DOWN, ClusterState.SHUTTING_DOWN)

    @property
    def end_position(self) -> Position:
        """The furthest WAL position the control file proves this data directory holds."""
        if self.min_recovery_lsn > self.checkpoint_lsn:
            return Position(max(self.min_recovery_timeline, self.checkpoint_timeline), self.min_recovery_lsn)
        return Position(self.checkpoint_timeline, self.checkpoint_lsn)


@dataclass(frozen=True)
class PrimaryView:
    """What a node learns about the current primary before joining it."""

    system_id: str
    timeline: int
    lsn: int
    history: tuple[TimelineFork, ...] = ()


@dataclass(frozen=True)
class ReplicaStat:
    """One row of pg_stat_replication on a primary."""

    application_name: str
    state: str           # startup, catchup, streaming, backup, stopping
    sync_state: str      # async, potential, sync, quorum
    flush_lsn: int | None


@dataclass(frozen=True)
class LocalState:
    """One look at the local instance."""

    datadir: DataDir
    running: bool
    in_recovery: bool | None = None
    control: ControlData | None = None
    rebuild: RebuildStatus = RebuildStatus.NONE
    receiving: bool = False          # a WAL receiver streams from a primary


@dataclass(frozen=True)
class Candidate:
    """A node that could be promoted: its WAL position (recorded while no primary runs) and record.

    ``holds_all`` is the durable record the primaries keep: True when the node held every
    acknowledged commit at the last record (a primary, or a synchronous standby), False when
    it did not, None when nothing was ever recorded for it.
    """

    node: str
    position: Position | None
    holds_all: bool | None = None
    score: int | None = None                # promotion score right now


@dataclass(frozen=True)
class PromotionFacts:
    """Everything the promote decision looks at."""

    me: Candidate
    others: tuple[Candidate, ...] = ()
    mode: SyncMode = SyncMode.SYNC
    last_primary_lsn: int | None = None    # last flush position the old primary reported (transient)
    max_lag: int = 0
    forced: bool = False
    primary_alive: bool = False            # another node is a running primary right now

    @property
    def history(self) -> bool:
        """Whether the cluster ever had a primary: some node has a durable record."""
        return any(c.holds_all is not None for c in (self.me, *self.others))
