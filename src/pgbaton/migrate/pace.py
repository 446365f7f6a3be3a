"""How many databases may run their initial copy at once: pure, from the clusters' limits.

Each database of a migration streams through one slot and one walsender on the source and one
apply worker on the target (holding one replication origin on PostgreSQL 18+).  While its
initial copy runs, the subscription adds up to ``max_sync_workers_per_subscription`` table
copies, each with a slot and a walsender on the source and a worker (and an origin) on the
target.  When they do not fit, PostgreSQL does not wait: a table copy that finds no free slot
fails and is retried, and a failed copy keeps its slot until then, so the shortage grows (10
databases x 100 tables ran out of 100 slots in the benchmark).  ``start`` therefore creates the
subscriptions of the databases that do not fit yet disabled (``queued``) and enables them as
copies finish: ``migrate run``, ``start --wait`` and ``wait_synced`` do that.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """One bounded resource: its setting and what others (not this migration) use of it now."""

    name: str          # e.g. "source.max_replication_slots"
    setting: int
    used_by_others: int

    @property
    def room(self) -> int:
        return self.setting - self.used_by_others


@dataclass(frozen=True)
class Capacity:
    limits: tuple[Limit, ...]
    sync_workers: int  # the subscriber's max_sync_workers_per_subscription


def copies_at_once(cap: Capacity, databases: int) -> int:
    """Databases whose initial copy may run side by side: every database's stream counted (the
    ones still queued will need theirs), each copy with all its table copies.  At least one,
    whatever the limits: a copy then runs with fewer table copies (``migrate check`` fails a
    cluster that cannot hold even that)."""
    per_copy = max(1, cap.sync_workers)
    fits = min(((lim.room - databases) // per_copy for lim in cap.limits), default=databases)
    return max(1, min(databases, fits))


def to_release(allowed: int, copying: int, queued: int) -> int:
    """How many queued databases to start copying now."""
    return max(0, min(queued, allowed - copying))


def needed(databases: int, sync_workers: int) -> tuple[int, int]:
    """Of each resource, beyond what others use: the least that works (every stream and one copy at
    a time with all its table copies) and what lets every database copy at once."""
    per_copy = max(1, sync_workers)
    return databases + per_copy, databases * (1 + per_copy)
