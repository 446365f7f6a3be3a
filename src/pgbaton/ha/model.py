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


@dataclass(frozen=True, order=True)
class Position:
    """Where a node's WAL ends: compared by timeline first, then LSN."""

    timeline: int
    lsn: int

    def encode(self) -> str:
        return f"{self.timeline}:{format_lsn(self.lsn)}"

    @classmethod
    def decode(cls, text: str) -> Position:
        tli, _, lsn = text.strip().partition(":")
        return cls(int(tli), parse_lsn(lsn))


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
class TimelineFork:
    """One line of a timeline history file: ``timeline`` ended at ``switch_lsn``."""

    timeline: int
    switch_lsn: int


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
    """A node that could be promoted, as recorded during the pre-promote notification."""

    node: str
    position: Position | None
    eligible: bool = True   # False for nodes the cluster will not promote (negative score)


@dataclass(frozen=True)
class PromotionFacts:
    """Everything the promote decision looks at."""

    me: Candidate
    others: tuple[Candidate, ...] = ()
    mode: SyncMode = SyncMode.SYNC
    was_in_sync: bool | None = None        # recorded by the old primary; None: no primary on record
    last_primary_lsn: int | None = None    # last flush position the old primary reported
    max_lag: int = 0
    forced: bool = False
    primary_alive: bool = False            # another node is a running primary right now
    notes: tuple[str, ...] = field(default=())
