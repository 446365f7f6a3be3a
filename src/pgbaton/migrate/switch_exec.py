"""``switchover`` and ``switchback``: carry out the steps ``switchover.ORDER`` fixes, in one direction.

Both commands are the same procedure over a ``streams.Leg``: clients leave ``leg.old`` for
``leg.new``; the stream old -> new is retired, the stream new -> old set up in its place.
Every step is recorded ``started`` before it acts and ``done`` after (keys prefixed per leg).
A failure before the switcher points at ``new`` undoes what was begun
(``switchover.rollback``, newest first): clients resume on ``old``, ``old`` is writable again,
the stream old -> new is intact.  A rerun after a crash does the same with what the catalog
holds, or, once the switcher points at ``new``, finishes the remaining steps.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, TypeVar

import psycopg
from psycopg import sql

from pgbaton.config import Config, MigrationConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate import streams, tablesync
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.lifecycle import State, admit
from pgbaton.migrate.names import object_name
from pgbaton.migrate.probe import connect
from pgbaton.migrate.sequences import copy_db_sequences
from pgbaton.migrate.status import status
from pgbaton.migrate.streams import SWITCHED, Leg, Side, rw
from pgbaton.migrate.switchers import Switcher, switcher_for
from pgbaton.migrate.switchover import ORDER, Action, Decision, Undo, may_switch, resume_from, rollback

log = logging.getLogger(__name__)
Ident = sql.Identifier
__all__ = ["SWITCHED", "SwitchFailed", "SwitchResult", "switchback", "switchover"]
T = TypeVar("T")


@dataclass
class SwitchResult:
    migration: str
    switched: bool
    steps: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    source_lsn: dict[str, str] = field(default_factory=dict)
    paused_seconds: float | None = None  # PAUSE .. RESUME, as the executor saw it
    step_seconds: dict[str, float] = field(default_factory=dict)
    direction: str = "switchover"
    db_step_seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # database -> step -> seconds

    def as_dict(self) -> dict[str, object]:
        return {"migration": self.migration, "direction": self.direction, "switched": self.switched,
                "steps": self.steps, "rolled_back": self.rolled_back, "reasons": self.reasons,
                "source_lsn": self.source_lsn, "paused_seconds": self.paused_seconds,
                "step_seconds": self.step_seconds, "database_step_seconds": self.db_step_seconds}


class SwitchFailed(PgbatonError):
    """A step failed: rolled back (or, once the clients were moved, to be finished by a rerun)."""

    def __init__(self, message: str, result: SwitchResult) -> None:
        super().__init__(message)
        self.result = result


@dataclass
class _Run:
    config: Config
    cfg: MigrationConfig
    name: str
    leg: Leg
    switcher: Switcher
    catalog: Catalog
    recorded: dict[str, tuple[str, Any]]  # this leg's records, keys without the prefix
    lsn: dict[str, str] = field(default_factory=dict)
    cancel_at_deadline: bool = False  # end the transactions still holding the pause at its deadline
    new_frozen: dict[str, bool] = field(default_factory=dict)  # per database, seen before the pause
    # pgbaton's own sessions, opened before the pause and kept through it: (side, database or "")
    sessions: dict[tuple[str, str], psycopg.Connection] = field(default_factory=dict)
    action: str = ""  # the step running now, for the per-database timings
    db_seconds: dict[str, dict[str, float]] = field(default_factory=dict)  # database -> step -> seconds
    paused_at: float | None = None   # PAUSE began (monotonic)
    resumed_at: float | None = None  # RESUME, on either side
    history_id: int | None = None  # this switch's row of the switch history
    pool: ThreadPoolExecutor | None = None  # the threads of ``_each_db``
    # per database, ``tablesync.signature`` of ``old`` when the check before the pause found every
    # table synced: the same signature inside the pause spares the full check
    tables_seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def paused_seconds(self) -> float | None:
        if self.paused_at is None or self.resumed_at is None:
            return None
        return round(self.resumed_at - self.paused_at, 3)

    @property
    def dbs(self) -> list[str]:
        return self.cfg.databases

    def session(self, side: Side, db: str | None = None) -> psycopg.Connection:
        """A session of pgbaton's own on ``side`` (``rw``), opened once and kept for the whole switch:
        the steps inside the pause do not wait for new backends.  A session a fault broke is
        opened again.  Each database's session is used by one thread at a time (``_each_db``)."""
        key = (side.name, db or "")
        conn = self.sessions.get(key)
        if conn is None or conn.closed or conn.broken:
            conn = rw(side, db)  # commits synchronously (``probe.connect``): durable before the step is recorded
            self.sessions[key] = conn
        return conn

    def own_pids(self, side: Side) -> list[int]:
        """Backend pids of the kept sessions on ``side`` (the freeze must not end them)."""
        return [c.info.backend_pid for (name, _), c in list(self.sessions.items())
                if name == side.name and not (c.closed or c.broken)]

    def close_sessions(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        for conn in self.sessions.values():
            try:
                conn.close()
            except psycopg.Error:
                pass
        self.sessions.clear()

    def record(self, action: str, state: str, detail: Any = None) -> None:
        self.record_many([(action, state, detail)])

    def record_many(self, steps: list[tuple[str, str, Any]]) -> None:
        """Step records in one round trip (a step's ``done`` with the next one's ``started``: nothing
        happens between the two, so a crash finds both or neither)."""
        self.catalog.record_steps([(self.leg.record_prefix + a, st, d) for a, st, d in steps])
        for a, st, d in steps:
            self.recorded[a] = (st, d)


def _leg_records(all_steps: dict[str, tuple[str, Any]], leg: Leg) -> dict[str, tuple[str, Any]]:
    p = leg.record_prefix
    if p:
        return {k[len(p):]: v for k, v in all_steps.items() if k.startswith(p)}
    return {k: v for k, v in all_steps.items() if ":" not in k}


def _each_db(r: _Run, fn: Callable[[str], T]) -> dict[str, T]:
    """``fn`` for every database at once (one thread and connection each): the clients wait on the
    slowest database, not on the sum.  Every call ends before this returns; the first error is raised.
    How long each database took is kept per step (``SwitchResult.db_step_seconds``)."""
    action = r.action

    def timed(db: str) -> T:
        began = time.monotonic()
        try:
            return fn(db)
        finally:
            r.db_seconds.setdefault(db, {})[action] = round(time.monotonic() - began, 4)

    if len(r.dbs) == 1:
        return {r.dbs[0]: timed(r.dbs[0])}
    if r.pool is None:  # one pool for the whole switch: no threads to start inside the pause
        r.pool = ThreadPoolExecutor(max_workers=min(len(r.dbs), 16), thread_name_prefix="pgbaton-switch")
    futures = {db: r.pool.submit(timed, db) for db in r.dbs}
    wait(futures.values())
    return {db: f.result() for db, f in futures.items()}


# -- the steps ------------------------------------------------------------------------------------
def _pause(r: _Run) -> None:
    r.switcher.pause(r.dbs, on_deadline=(lambda dbs: _end_transactions(r, dbs)) if r.cancel_at_deadline else None)


def _end_transactions(r: _Run, dbs: list[str]) -> None:
    """At the pause's deadline (``--cancel-at-deadline``): end the client sessions of ``dbs`` on
    ``old`` that are inside a transaction, so that the pause completes; those transactions fail."""
    with rw(r.leg.old) as s:
        rows = s.execute(
            "SELECT pid, datname, application_name, now() - xact_start FROM pg_stat_activity "
            "WHERE datname = ANY(%s) AND backend_type = 'client backend' AND xact_start IS NOT NULL "
            "AND pid <> pg_backend_pid() AND application_name <> 'pgbaton-migrate'", (dbs,)).fetchall()
        for pid, db, app, age in rows:
            log.warning("migration %s: ending a transaction holding the pause: pid %s in %s (%s, open %s)",
                        r.name, pid, db, app or "-", age)
            s.execute("SELECT pg_terminate_backend(%s)", (pid,))


def _set_read_only(r: _Run, side: Side, dbs: list[str], on: bool) -> None:
    s = r.session(side)
    with s.transaction():  # one commit (one WAL flush) for all databases
        for db in dbs:
            stmt = "ALTER DATABASE {} SET default_transaction_read_only = on" if on \
                else "ALTER DATABASE {} RESET default_transaction_read_only"
            s.execute(sql.SQL(stmt).format(Ident(db)))


def _freeze(r: _Run) -> None:
    _freeze_side(r, r.leg.old, r.dbs)


def _freeze_side(r: _Run, side: Side, dbs: list[str]) -> None:
    """New sessions of ``dbs`` on ``side`` read-only, then every other client session of these
    databases ended (pgbaton's own sessions of this switch excepted: they already run read-write)."""
    if not dbs:
        return
    _set_read_only(r, side, dbs, True)
    s = r.session(side)
    deadline = time.monotonic() + r.cfg.switch.timeout_seconds
    while True:
        rows = s.execute(
            "SELECT pid, application_name, state, wait_event FROM pg_stat_activity WHERE datname = ANY(%s) "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() AND pid <> ALL(%s)",
            (dbs, r.own_pids(side))).fetchall()
        if not rows:
            return
        s.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", ([p[0] for p in rows],))
        if time.monotonic() > deadline:
            raise PgbatonError(f"{side.name} sessions did not end after pg_terminate_backend: "
                               + ", ".join(f"{p} ({app or '-'}, {st}, {we})" for p, app, st, we in rows))
        time.sleep(0.02)


def _read_lsn(r: _Run) -> dict[str, str]:
    """Per database, a marker in ``old``'s WAL after the freeze, committed and flushed: its position.

    Every transaction that committed before the freeze ends before the marker; a synchronous
    commit flushes the WAL at once, so the walsender can send it without waiting for the WAL writer.
    """
    def marker(db: str) -> str:
        s = r.session(r.leg.old, db)
        with s.transaction():
            s.execute("SET LOCAL synchronous_commit = on")
            row = s.execute("SELECT pg_logical_emit_message(true, 'pgbaton_switchover', %s)::text",
                            (r.name,)).fetchone()
        assert row is not None
        return str(row[0])

    r.lsn = _each_db(r, marker)
    return r.lsn


def _wait_applied(r: _Run) -> None:
    if not r.lsn:
        rec = r.recorded.get(Action.read_source_lsn.value)
        r.lsn = dict(rec[1]) if rec and rec[1] else {}
    deadline = time.monotonic() + r.cfg.switch.timeout_seconds
    pending = dict(r.lsn)
    s = r.session(r.leg.old)
    while pending:
        slots = {object_name(r.name, db, r.leg.stream): db for db in pending}
        applied: dict[str, bool] = dict(s.execute(
            "SELECT s.slot_name, s.confirmed_flush_lsn >= w.lsn::pg_lsn FROM pg_replication_slots s "
            "JOIN unnest(%s::text[], %s::text[]) AS w (slot, lsn) ON w.slot = s.slot_name",
            (list(slots), [pending[db] for db in slots.values()])).fetchall())
        for slot, db in slots.items():
            if slot not in applied:
                raise PgbatonError(f"database {db}: the slot of the {r.leg.old.name} is gone")
            if applied[slot]:
                del pending[db]
        if pending and time.monotonic() > deadline:
            raise PgbatonError(f"the {r.leg.new.name} did not apply up to the {r.leg.old.name} position within "
                               f"{r.cfg.switch.timeout_seconds:.0f} s: {', '.join(pending)}")
        if pending:
            time.sleep(0.01)


def _sync_tables(r: _Run) -> dict[str, dict[str, object]]:
    """Inside the pause, with ``old`` frozen and applied: every table ``old`` publishes is synced on
    ``new`` (a table created by replicated DDL just before the switch is added and copied now) and
    every DDL entry is applied; bounded by switch.timeout_seconds, else the switch rolls back."""
    def check(db: str) -> dict[str, object]:
        seen = r.tables_seen.get(db)
        if seen is not None and seen == tablesync.signature(r.session(r.leg.old, db)):
            # complete at the check before the pause, and no table came or went on ``old`` since
            return {"added": [], "unchanged_since_check": True}
        return tablesync.complete(r.leg.old, r.leg.new, db, object_name(r.name, db, r.leg.stream),
                                  r.cfg.switch.timeout_seconds,
                                  conns=(r.session(r.leg.old, db), r.session(r.leg.new, db)))

    return _each_db(r, check)


def _copy_sequences(r: _Run) -> dict[str, dict[str, int]]:
    return _each_db(r, lambda db: copy_db_sequences(r.session(r.leg.old, db), r.session(r.leg.new, db), db,
                                                    r.leg.new.name))


def _open_stream(r: _Run, pub: Side, sub: Side, suffix: str, frozen: Callable[[str], bool | None]) -> None:
    """Per database: publication and slot on ``pub``, a subscription without copy on ``sub`` (as
    the connecting user; a stream restored into a frozen ``new`` by a rollback starts read-only
    there if its setting is missing, and ``_tidy`` then restarts it with the setting)."""
    origin_none = streams.major(sub) >= 16

    def create(db: str) -> None:
        obj = object_name(r.name, db, suffix)
        streams.create_publisher_end(pub, db, obj)
        streams.create_subscriber_end(pub, sub, db, obj, origin_none=origin_none, frozen=frozen(db))

    _each_db(r, create)


def _create_back(r: _Run) -> None:
    """Inside the pause: the publication and slot of the stream back on ``new``, so that the slot
    holds every change clients make there from their first transaction on."""
    _each_db(r, lambda db: streams.create_publisher_end(r.leg.new, db, object_name(r.name, db, r.leg.back),
                                                        conn=r.session(r.leg.new, db)))


# after RESUME the clients' first transactions open new server connections on ``new``; the stream
# back (a walsender and an apply worker per database, started side by side) waits this long so that
# it does not compete with them for the CPU; its slots hold every change meanwhile
RESUME_GRACE_SECONDS = float(os.environ.get("PGBATON_RESUME_GRACE", "0.3"))


def _open_back(r: _Run) -> None:
    """After the clients resumed: the subscriptions of the stream back on ``old`` (frozen), reading
    the slots from where they were created (nothing is missed; they only start later).

    Each first gives pgbaton's user its read-write setting in that database of ``old`` (its
    worker reads it when it starts).  Not earlier: until PgBouncer's entries point to ``new``
    (recorded before RESUME), ``old`` stays read-only for every session."""
    if r.resumed_at is not None:
        time.sleep(max(0.0, r.resumed_at + RESUME_GRACE_SECONDS - time.monotonic()))
    origin_none = streams.major(r.leg.old) >= 16

    def create(db: str) -> None:
        obj = object_name(r.name, db, r.leg.back)
        streams.apply_may_write(r.leg.old, db, r.session(r.leg.old, db))
        streams.create_subscriber_end(r.leg.new, r.leg.old, db, obj, origin_none=origin_none, frozen=True)

    _each_db(r, create)


def _stop_stream(r: _Run) -> None:
    """Right after RESUME, before the stream back starts: the subscriptions old -> new disabled and
    their workers gone, so that a change the stream back applies into ``old`` never echoes back.
    They had nothing left to apply (``old`` frozen and applied up to its marker)."""
    timeout = r.cfg.switch.timeout_seconds

    def stop(db: str) -> None:
        obj = object_name(r.name, db, r.leg.stream)
        s = r.session(r.leg.new, db)
        row = s.execute("SELECT oid, subenabled FROM pg_subscription WHERE subname = %s AND subdbid = "
                        "(SELECT oid FROM pg_database WHERE datname = current_database())", (obj,)).fetchone()
        if row is None:
            return
        if row[1]:
            s.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(Ident(obj)))
        streams.end_workers(s, int(row[0]), f"database {db}: the workers of {obj}", timeout)

    _each_db(r, stop)


def _retire_stream(r: _Run) -> None:
    _each_db(r, lambda db: streams.retire(r.cfg, r.name, db, r.leg.stream, r.cfg.switch.timeout_seconds))


def _point(r: _Run) -> None:
    _set_read_only(r, r.leg.new, r.dbs, False)  # frozen by an earlier switch the other way
    r.switcher.point_to(r.leg.new.cluster, r.dbs)


def _record_state(r: _Run) -> None:
    with r.catalog.conn.transaction():
        r.catalog.transition(r.leg.done)
        r.catalog.clear_steps()
        if r.history_id is not None:
            r.catalog.end_switch(r.history_id, "complete", paused_seconds=r.paused_seconds(),
                                 databases=r.db_seconds)


_ACTIONS: dict[Action, Callable[[_Run], object]] = {
    Action.pause_clients: _pause,
    Action.freeze_source: _freeze,
    Action.read_source_lsn: _read_lsn,
    Action.wait_applied: _wait_applied,
    Action.sync_tables: _sync_tables,
    Action.copy_sequences: _copy_sequences,
    Action.create_reverse: _create_back,
    Action.retire_forward: _stop_stream,
    Action.point_switcher: _point,
    Action.open_reverse: _open_back,
    Action.drop_forward: _retire_stream,
    Action.record_state: _record_state,
}


# -- undo -------------------------------------------------------------------------------------------
def _resume_on_old(r: _Run) -> None:
    if Action.point_switcher.value in r.recorded:
        # it may have unfrozen ``new`` (frozen by the switch the other way) and rewritten the
        # entries already: ``new`` frozen again first, as it was, then the entries back on ``old``
        detail = r.recorded[Action.point_switcher.value][1]
        frozen = detail.get("frozen") if isinstance(detail, dict) else None
        if frozen is None:
            frozen = [db for db in r.dbs if r.new_frozen.get(db)]
        _freeze_side(r, r.leg.new, [db for db in r.dbs if db in frozen])
        r.switcher.point_to(r.leg.old.cluster, r.dbs)
    r.switcher.resume(r.dbs)
    r.resumed_at = time.monotonic()


def _unfreeze(r: _Run) -> None:
    _set_read_only(r, r.leg.old, r.dbs, False)


def _drop_back(r: _Run) -> None:
    _each_db(r, lambda db: streams.retire(r.cfg, r.name, db, r.leg.back, r.cfg.switch.timeout_seconds))


def _restore_stream(r: _Run) -> None:
    """The stream old -> new again (no copy: ``old`` was frozen and fully applied)."""
    _open_stream(r, r.leg.old, r.leg.new, r.leg.stream, lambda db: r.new_frozen.get(db))


_UNDOS: dict[Undo, Callable[[_Run], None]] = {
    Undo.resume_clients: _resume_on_old,
    Undo.unfreeze_source: _unfreeze,
    Undo.drop_reverse: _drop_back,
    Undo.restore_forward: _restore_stream,
}


def _prepare(r: _Run, *, fresh: bool = False) -> None:
    """Outside the clients' pause: which databases of ``new`` are frozen (by an earlier switch: a
    rollback restores the stream into them), and the sessions the steps inside the pause use.

    While the switch runs, ``old`` stays read-only for every session, the user pgbaton connects
    as included (a client sharing that user, through a PgBouncer restarted on its old entries
    say, must not write what the retired stream no longer carries).  So a ``fresh`` switch first
    resets that user's read-write setting in ``old`` (left by an earlier switch killed before it
    tidied); ``_open_back`` makes it again once the clients are on ``new``, and ``_tidy`` makes
    any other a stream into a frozen database needs once the switch is over."""
    def prepare(db: str) -> bool:
        if fresh:
            streams.apply_may_write(r.leg.old, db, r.session(r.leg.old, db), on=False)
        with rw(r.leg.new) as c:
            return streams.is_frozen(c, db)

    r.new_frozen = _each_db(r, prepare)
    # the sessions the steps inside the pause use, opened now: a new backend costs milliseconds each
    r.session(r.leg.old)
    r.session(r.leg.new)
    _each_db(r, lambda db: (r.session(r.leg.old, db), r.session(r.leg.new, db)))


def _tidy(r: _Run) -> list[str]:
    """After a switch or its rollback: the read-write setting only where a subscription into a frozen database
    needs it.  A failure here changes nothing of the outcome: `migrate run` and `finish` tidy again."""
    done: list[str] = []
    for side in (r.leg.old, r.leg.new):
        try:
            done += streams.reconcile_apply_exemption(side, r.dbs)
        except (PgbatonError, psycopg.Error) as exc:
            log.warning("migration %s: %s: read-write settings not tidied yet (%s)", r.name, side.name,
                        str(exc).strip().splitlines()[0] if str(exc).strip() else exc)
    return done


def _undo(r: _Run, reason: str) -> list[str]:
    """Undo every step begun (a begun point_switcher counts only once done), newest first."""
    begun = [a for a in ORDER if a.value in r.recorded
             and (a is not Action.point_switcher or r.recorded[a.value][0] == "done")]
    undone: list[str] = []
    for u in rollback(begun):
        r.action = f"undo:{u.value}"
        try:
            _UNDOS[u](r)
            undone.append(u.value)
        except (PgbatonError, psycopg.Error) as exc:
            # stop here: an undo after it must not run while this one is missing (clients resumed on
            # ``old`` while its stream to ``new`` is not restored would write what ``new`` never gets)
            log.error("migration %s: undo %s failed: %s", r.name, u.value, exc)
            raise PgbatonError(f"rollback incomplete: {u.value} failed ({str(exc).strip()}); done so far: "
                               f"{', '.join(undone) or 'nothing'}; clients stay paused and the {r.leg.old.name} "
                               f"frozen until `migrate {r.leg.command} {r.name}` is rerun") from None
    with r.catalog.conn.transaction():
        r.catalog.clear_steps()
        r.catalog.transition(r.leg.undo)
        if r.history_id is not None:
            r.catalog.end_switch(r.history_id, "rolled_back", paused_seconds=r.paused_seconds(),
                                 databases=r.db_seconds, reason=reason)
    _tidy(r)
    return undone


# -- the commands ------------------------------------------------------------------------------------
def switchover(config: Config, name: str, *, switcher: Switcher | None = None,
               fail_at: Action | None = None, cancel_at_deadline: bool = False) -> SwitchResult:
    """Move every database of the migration to the target together, or none of them.

    ``fail_at`` makes that step fail on purpose (tests of the rollback).  ``cancel_at_deadline``:
    transactions still holding the clients' pause at switch.pause_timeout_seconds are ended (they
    fail) instead of the switch being rolled back.
    """
    return _switch(config, name, streams.forward, switcher, fail_at, cancel_at_deadline)


def switchback(config: Config, name: str, *, switcher: Switcher | None = None,
               fail_at: Action | None = None, cancel_at_deadline: bool = False) -> SwitchResult:
    """After a switchover: move every database back to the source, over the reverse stream."""
    return _switch(config, name, streams.backward, switcher, fail_at, cancel_at_deadline)


def _switch(config: Config, name: str, leg_for: Callable[[MigrationConfig], Leg],
            switcher: Switcher | None, fail_at: Action | None, cancel_at_deadline: bool = False) -> SwitchResult:
    cfg = config.migration(name)
    leg = leg_for(cfg)
    res = SwitchResult(name, switched=False, direction=leg.command)
    with connect(cfg.target, "target") as tconn:
        catalog = Catalog(tconn, cfg.options.catalog_schema, name)
        if catalog.exists():
            catalog.ensure()  # a catalog of an older pgbaton gains what this one records
        catalog.hold(leg.command)
        state = catalog.state()
        admission = admit(leg.verb, state, name)
        if not admission.act:
            res.switched, res.reasons = admission.done, [admission.message]
            return res
        r = _Run(config, cfg, name, leg, switcher or switcher_for(cfg), catalog,
                 _leg_records(catalog.switch_steps(), leg), cancel_at_deadline=cancel_at_deadline)
        try:
            return _carry_out(r, res, state, fail_at)
        finally:
            r.close_sessions()


def _carry_out(r: _Run, res: SwitchResult, state: State, fail_at: Action | None) -> SwitchResult:
    config, cfg, leg, catalog, name = r.config, r.cfg, r.leg, r.catalog, r.name
    if r.recorded and state is not leg.during:  # interrupted under an older pgbaton, before the states
        state = catalog.transition(leg.begin)
    done = [a for a in ORDER if r.recorded.get(a.value, ("",))[0] == "done"]
    if state is leg.during:
        r.history_id = catalog.open_switch(leg.command)
    if state is leg.during and Action.point_switcher in done:  # crashed after the switch: finish
        log.warning("migration %s: finishing an interrupted %s", name, leg.command)
        r.switcher.resume(r.dbs)
        todo = resume_from(done)
    elif state is leg.during:  # crashed before the switch: undo what was begun
        log.warning("migration %s: rolling back an interrupted %s", name, leg.command)
        _prepare(r)
        msg = f"an interrupted {leg.command} was rolled back; run `migrate {leg.command}` again"
        res.rolled_back = _undo(r, msg)
        res.reasons = [msg]
        return res
    else:
        # a stream just (re)created shows `stopped` until its apply worker runs: allow it a moment
        deadline = time.monotonic() + min(cfg.switch.timeout_seconds, _SETTLE_SECONDS)
        while True:
            decision = may_switch(status(config, name), cfg.databases, cfg.switch.max_lag_bytes)
            if decision.proceed:
                decision = _tables_ready(r)
            if decision.proceed or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        if not decision.proceed:
            res.reasons = list(decision.reasons)
            catalog.cancelled_switch(leg.command, "; ".join(decision.reasons))
            return res
        with catalog.conn.transaction():
            catalog.clear_steps()
            catalog.transition(leg.begin)
            r.history_id = catalog.begin_switch(leg.command)
        r.recorded = {}
        todo = list(ORDER)
    _prepare(r, fresh=not r.recorded)
    _run_steps(r, todo, res, fail_at)
    res.switched, res.source_lsn = True, r.lsn
    _tidy(r)
    return res


def _tables_ready(r: _Run) -> Decision:
    """Before the pause: tables created by replicated DDL are added to the stream's subscription
    now, so that their copy is done while the clients still run (the pause checks again)."""
    def check(db: str) -> str | None:
        obj = object_name(r.name, db, r.leg.stream)
        old, new = r.session(r.leg.old, db), r.session(r.leg.new, db)
        seen = tablesync.signature(old)  # first: a table made after it changes it
        state = tablesync.observe(r.leg.old, r.leg.new, db, obj, (old, new))
        if state.refresh:
            tablesync.refresh(r.leg.new, db, obj, new)
        if state.refresh or state.waiting or state.absent:  # DDL still behind is only lag
            r.tables_seen.pop(db, None)
            return (f"{db}: {state.describe()}"
                    + ("" if r.cfg.options.ddl_replication or not state.absent else
                       f" (DDL replication is off: create them on the {r.leg.new.name})"))
        r.tables_seen[db] = seen
        return None

    r.action = "check_tables"
    reasons = [why for why in _each_db(r, check).values() if why]
    return Decision(not reasons, tuple(reasons))


FAULT_ENV = "PGBATON_FAULT"
_SETTLE_SECONDS = 15.0  # how long a switch waits for every stream to be streaming before refusing


def _fault(point: str) -> None:
    """Crash tests: ``PGBATON_FAULT=<command>:<step>:<before|after>`` kills this process (SIGKILL)
    there, as a power cut or ``kill -9`` would: nothing else runs, no rollback, no cleanup."""
    if os.environ.get(FAULT_ENV) == point:
        log.warning("%s=%s: killing pgbaton here", FAULT_ENV, point)
        os.kill(os.getpid(), signal.SIGKILL)


def _run_steps(r: _Run, todo: list[Action], res: SwitchResult, fail_at: Action | None) -> None:
    res.db_step_seconds = r.db_seconds
    done: list[tuple[str, str, Any]] = []  # the last step's ``done``, recorded with the next ``started``
    for action in todo:
        r.action = action.value
        # point_switcher unfreezes ``new``: which databases were frozen, for a rollback after a crash
        started = {"frozen": [db for db in r.dbs if r.new_frozen.get(db)]} \
            if action is Action.point_switcher else None
        r.record_many([*done, (action.value, "started", started)])
        done = []
        log.info("migration %s: %s %s", r.name, r.leg.command, action.value)
        try:
            _fault(f"{r.leg.command}:{action.value}:before")
            if action is fail_at:
                raise PgbatonError(f"failure injected at {action.value}")
            began = time.monotonic()
            if action is Action.pause_clients:
                r.paused_at = began
            detail = _ACTIONS[action](r)
            res.step_seconds[action.value] = round(time.monotonic() - began, 3)
            _fault(f"{r.leg.command}:{action.value}:after")
        except Exception as exc:  # any failure before the switch: undo, then report
            log.error("migration %s: %s step %s failed: %s", r.name, r.leg.command, action.value, exc)
            if Action.point_switcher.value in r.recorded and r.recorded[Action.point_switcher.value][0] == "done":
                msg = (f"{r.leg.command} of {r.name} failed at {action.value}: {exc}; "
                       f"clients are on the {r.leg.new.name}: rerun `migrate {r.leg.command}`")
                res.reasons = [msg]
                raise SwitchFailed(msg, res) from None
            failure = f"{r.leg.command} of {r.name} failed at {action.value}: {exc}"
            undone = _undo(r, failure)
            res.rolled_back = undone
            res.paused_seconds = r.paused_seconds()
            msg = f"{failure}; rolled back: {', '.join(undone) or 'nothing'}"
            res.reasons = [msg]
            raise SwitchFailed(msg, res) from None
        res.steps.append(action.value)
        if action is Action.record_state:
            continue  # recorded with the state itself (the step records were cleared with it)
        done = [(action.value, "done", detail)]
        if action is Action.point_switcher:
            r.record_many(done)  # before RESUME: once recorded, a rerun finishes the switch, never undoes it
            done = []
            r.switcher.resume(r.dbs)  # switched: a failure from here on is finished by a rerun
            r.resumed_at = time.monotonic()
            res.paused_seconds = r.paused_seconds()
            if r.history_id is not None:  # kept should a later step be interrupted
                r.catalog.note_switch(r.history_id, paused_seconds=res.paused_seconds, databases=r.db_seconds)
    if done:
        r.record_many(done)
