"""Switchover decisions, pure: may it proceed, in which order, and what undoes a failed step.

``switch_exec`` carries them out; these functions fix the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pgbaton.migrate.model import DbState, DbStatus


class Action(StrEnum):
    """The switchover, step by step; every database together or none."""

    pause_clients = "pause_clients"            # PgBouncer PAUSE
    freeze_source = "freeze_source"            # source databases read-only, open writers ended
    read_source_lsn = "read_source_lsn"        # per database, after the freeze
    wait_applied = "wait_applied"              # target applied up to that position, per database
    sync_tables = "sync_tables"                # every published table copied, every DDL entry applied
    copy_sequences = "copy_sequences"
    create_reverse = "create_reverse"          # target -> source: publications and slots
    point_switcher = "point_switcher"          # switcher at the target, RESUME
    # after the clients resumed: nothing here may be undone, a failure is finished by a rerun.
    # The forward stream has nothing left to carry (the source is frozen and applied up to its
    # marker), so it is stopped out of the pause, but before the stream back starts: a change that
    # stream applies into the source must never echo back to the target.
    retire_forward = "retire_forward"          # forward subscriptions disabled, their workers gone
    open_reverse = "open_reverse"              # target -> source subscriptions, no copy (from the slots)
    drop_forward = "drop_forward"              # forward slots, subscriptions, publications
    record_state = "record_state"


ORDER = tuple(Action)

class Undo(StrEnum):
    resume_clients = "resume_clients"
    unfreeze_source = "unfreeze_source"
    drop_reverse = "drop_reverse"
    restore_forward = "restore_forward"


# what undoes each step, applied newest first when a later step fails (before point_switcher);
# retire_forward comes after it now, its undo serves a switch a pgbaton of the older order began
_UNDO: dict[Action, Undo] = {
    Action.pause_clients: Undo.resume_clients,
    Action.freeze_source: Undo.unfreeze_source,
    Action.create_reverse: Undo.drop_reverse,
    Action.retire_forward: Undo.restore_forward,
}


@dataclass(frozen=True)
class Decision:
    proceed: bool
    reasons: tuple[str, ...]


def may_switch(statuses: list[DbStatus], expected: list[str], max_lag_bytes: int = 16 * 2**20) -> Decision:
    """Step 1: every database streaming, every table synced, lag small enough to drain fast.

    The error counts of ``pg_stat_subscription_stats`` are cumulative: one lost connection (a
    publisher restart) counts as an apply error for good.  So they do not refuse a switch on
    their own, only explain a refusal: a stream that keeps failing is not streaming, lags, or
    does not reach the marker within switch.timeout_seconds (and the switch rolls back).
    """
    reasons: list[str] = []
    seen = {s.database: s for s in statuses}
    for db in expected:
        s = seen.get(db)
        if s is None:
            reasons.append(f"{db}: no status")
            continue
        mine: list[str] = []
        if s.state is not DbState.streaming:
            mine.append(f"{db}: {s.state.value}, not streaming")
        if s.tables_total == 0 or s.tables_synced < s.tables_total:
            mine.append(f"{db}: {s.tables_synced}/{s.tables_total} tables synced")
        if s.lag_bytes is None:
            mine.append(f"{db}: lag unknown (no slot)")
        elif s.lag_bytes > max_lag_bytes:
            mine.append(f"{db}: lag {s.lag_bytes} bytes > {max_lag_bytes}")
        if mine and s.errors:
            mine.append(f"{db}: " + "; ".join(s.errors))
        reasons += mine
    return Decision(not reasons, tuple(reasons))


@dataclass(frozen=True)
class TableSync:
    """What the new side of one database still lacks before its stream may be retired."""

    refresh: tuple[str, ...] = ()     # published, not in the subscription, present: add them (copy)
    waiting: tuple[str, ...] = ()     # in the subscription, initial copy not finished
    absent: tuple[str, ...] = ()      # published, not even created on the new side yet (DDL behind)
    ddl_behind: int = 0               # DDL queue entries of the old side not held by the new one

    @property
    def complete(self) -> bool:
        """Every published table synced.  ``ddl_behind`` alone does not count: once the stream has
        applied past the frozen side's marker, every DDL entry it carried is applied (a failing one
        stops the stream, and the wait for the marker fails); entries still missing were made on
        the old side before this stream existed (DDL run on the target while it was not the
        primary) and were never to be carried by it."""
        return not (self.refresh or self.waiting or self.absent)

    def describe(self) -> str:
        parts = []
        if self.ddl_behind:
            parts.append(f"{self.ddl_behind} DDL command(s) not applied")
        if self.absent:
            parts.append("not created yet: " + ", ".join(self.absent))
        if self.refresh:
            parts.append("not subscribed: " + ", ".join(self.refresh))
        if self.waiting:
            parts.append("still copying: " + ", ".join(self.waiting))
        return "; ".join(parts) or "complete"


# pg_subscription_rel.srsubstate values after which a table's rows are all on the subscriber:
# ready, or sync done (the apply worker takes over from the sync position)
SYNCED_STATES = frozenset({"r", "s"})


def table_sync(published: set[str], subscribed: dict[str, str], present: set[str],
               old_queue: set[tuple[str, int]], new_queue: set[tuple[str, int]]) -> TableSync:
    """Compare what the old side publishes with what the new side's subscription holds.

    ``subscribed``: table -> srsubstate; ``present``: the published tables that exist on the
    new side; the queues: (node, id) of each side's DDL queue entries.  A table created by
    replicated DDL shortly before the switch exists on the new side but is not subscribed
    (its rows were never copied); retiring the stream then would leave it empty.
    """
    missing = sorted(published - set(subscribed))
    return TableSync(
        refresh=tuple(t for t in missing if t in present),
        waiting=tuple(sorted(t for t, st in subscribed.items() if t in published and st not in SYNCED_STATES)),
        absent=tuple(t for t in missing if t not in present),
        ddl_behind=len(old_queue - new_queue))


def rollback(done: list[Action]) -> list[Undo]:
    """What to undo, newest first, when a step fails after ``done`` succeeded.

    Once the switcher points at the target the switchover is complete: a later failure
    (recording the state) is repaired by rerunning, never by switching back.
    """
    if Action.point_switcher in done:
        return []
    return [_UNDO[a] for a in reversed(done) if a in _UNDO]


def resume_from(done: list[Action]) -> list[Action]:
    """After a crash: the steps still to run, given those recorded as done (rerun = resume)."""
    return [a for a in ORDER if a not in done]


@dataclass(frozen=True)
class SeqValue:
    last_value: int | None  # None: never used (pg_sequences.last_value is NULL)
    increment: int = 1


def sequence_updates(source: dict[str, SeqValue], target: dict[str, SeqValue]) -> tuple[dict[str, int], list[str]]:
    """setval() per target sequence so that it is not behind the source; and sequences missing there.

    A sequence the source never used, or one already ahead on the target, is left alone:
    sequences only move forward.
    """
    updates: dict[str, int] = {}
    for name, src in source.items():
        tgt = target.get(name)
        if tgt is None or src.last_value is None:
            continue
        ahead = tgt.last_value is not None and (
            tgt.last_value >= src.last_value if src.increment > 0 else tgt.last_value <= src.last_value)
        if not ahead:
            updates[name] = src.last_value
    return updates, sorted(set(source) - set(target))
