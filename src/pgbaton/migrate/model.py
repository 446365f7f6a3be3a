"""Typed snapshots of observed state and the verdicts and actions decided from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    ok = "ok"
    warn = "warn"
    fail = "fail"


@dataclass(frozen=True)
class Verdict:
    item: str
    status: Status
    detail: str
    database: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"item": self.item, "database": self.database, "status": self.status.value, "detail": self.detail}


@dataclass(frozen=True)
class ClusterFacts:
    """Settings and privileges of one cluster, as read by ``probe``."""

    version_num: int
    wal_level: str
    max_replication_slots: int
    used_replication_slots: int
    max_wal_senders: int
    used_wal_senders: int
    max_worker_processes: int
    max_logical_replication_workers: int
    max_sync_workers_per_subscription: int
    is_superuser: bool
    can_replicate: bool
    available_extensions: frozenset[str] = frozenset()
    max_active_replication_origins: int | None = None  # PostgreSQL 18+
    user_name: str = ""
    user_sessions: int = 0  # client sessions of ``user_name`` other than pgbaton's

    @property
    def major(self) -> int:
        return self.version_num // 10000


@dataclass(frozen=True)
class SourceDbFacts:
    name: str
    exists: bool
    tables: int = 0
    tables_without_key: tuple[str, ...] = ()
    tables_with_unique_index: tuple[str, ...] = ()  # no primary key, but a unique NOT NULL index
    unlogged_tables: tuple[str, ...] = ()
    large_objects: int = 0
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetDbFacts:
    name: str
    exists: bool
    tables: int = 0
    created_by_pgbaton: bool = False


@dataclass(frozen=True)
class PreflightFacts:
    source: ClusterFacts
    target: ClusterFacts
    source_dbs: tuple[SourceDbFacts, ...]
    target_dbs: tuple[TargetDbFacts, ...]


class Step(StrEnum):
    """What ``start`` does next for one database, in order."""

    set_replica_identity = "set_replica_identity"
    drop_partial_target_db = "drop_partial_target_db"
    create_target_db = "create_target_db"
    copy_schema = "copy_schema"
    create_publication = "create_publication"
    create_slot = "create_slot"
    create_subscription = "create_subscription"
    reattach_subscription = "reattach_subscription"  # subscription lost, slot kept: resume, no copy
    enable_subscription = "enable_subscription"
    refuse_lost_slot = "refuse_lost_slot"  # data copied once but the slot is gone: changes were lost


class DbState(StrEnum):
    """Where one database of a migration stands."""

    not_started = "not_started"
    preparing = "preparing"
    queued = "queued"        # set up; the initial copy waits until other databases' copies leave room
    copying = "copying"
    streaming = "streaming"
    stopped = "stopped"


@dataclass(frozen=True)
class DbProgress:
    """What exists for one database, observed on both sides and in the catalog."""

    name: str
    target_db_exists: bool
    created_db: bool
    schema_copied: bool
    tables_need_identity: tuple[str, ...]
    publication_exists: bool
    slot_exists: bool
    subscription_exists: bool
    subscription_enabled: bool
    subscribed: bool = False
    tables_total: int = 0
    tables_synced: int = 0
    worker_running: bool = False
    queued: bool = False  # subscription made disabled by ``start``: its initial copy waits for room (``pace``)


@dataclass(frozen=True)
class DbStatus:
    database: str
    state: DbState
    tables_synced: int
    tables_total: int
    lag_bytes: int | None
    lag_seconds: float | None
    source_lsn: str | None = None
    confirmed_flush_lsn: str | None = None
    errors: list[str] = field(default_factory=list)
    direction: str = "forward"  # "reverse" after a switchover: target -> source

    def as_dict(self) -> dict[str, object]:
        return {"database": self.database, "direction": self.direction, "state": self.state.value,
                "tables_synced": self.tables_synced,
                "tables_total": self.tables_total, "lag_bytes": self.lag_bytes, "lag_seconds": self.lag_seconds,
                "source_lsn": self.source_lsn, "confirmed_flush_lsn": self.confirmed_flush_lsn,
                "errors": self.errors}
