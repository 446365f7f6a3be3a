"""``switchover``: carry out the steps ``switchover.ORDER`` fixes, recording each in the catalog.

Every step is recorded ``started`` before it acts and ``done`` after.  A failure before the
switcher points at the target undoes what was begun (``switchover.rollback``, newest first):
clients resume on the source, the source is writable again, the forward replication is
intact.  A rerun after a crash does the same with what the catalog holds, or, once the
switcher points at the target, finishes the remaining steps.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from pgbaton.config import Config, MigrationConfig
from pgbaton.errors import PgbatonError
from pgbaton.migrate import execute
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.names import object_name
from pgbaton.migrate.probe import connect, slot_exists
from pgbaton.migrate.sequences import sync_sequences
from pgbaton.migrate.status import status
from pgbaton.migrate.switchers import Switcher, switcher_for
from pgbaton.migrate.switchover import ORDER, Action, Undo, may_switch, resume_from, rollback

log = logging.getLogger(__name__)
Ident = sql.Identifier
SWITCHED = "switched"


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

    def as_dict(self) -> dict[str, object]:
        return {"migration": self.migration, "switched": self.switched, "steps": self.steps,
                "rolled_back": self.rolled_back, "reasons": self.reasons, "source_lsn": self.source_lsn,
                "paused_seconds": self.paused_seconds, "step_seconds": self.step_seconds}


@dataclass
class _Run:
    config: Config
    cfg: MigrationConfig
    name: str
    switcher: Switcher
    catalog: Catalog
    recorded: dict[str, tuple[str, Any]]
    lsn: dict[str, str] = field(default_factory=dict)

    @property
    def dbs(self) -> list[str]:
        return self.cfg.databases


def _source_rw(cfg: MigrationConfig, db: str | None = None) -> psycopg.Connection:
    """A source session that may write although the database is frozen (pgbaton's own work)."""
    conn = connect(cfg.source, "source", db)
    conn.execute("SET default_transaction_read_only = off")
    return conn


# -- the steps ------------------------------------------------------------------------------------
def _pause(r: _Run) -> None:
    r.switcher.pause(r.dbs)


def _freeze(r: _Run) -> None:
    """New sessions read-only, then every other client session of these databases ended."""
    with _source_rw(r.cfg) as s:
        for db in r.dbs:
            s.execute(sql.SQL("ALTER DATABASE {} SET default_transaction_read_only = on").format(Ident(db)))
        deadline = time.monotonic() + r.cfg.switch.timeout_seconds
        while True:
            pids = [p for (p,) in s.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s) AND backend_type = 'client backend' "
                "AND pid <> pg_backend_pid()", (r.dbs,)).fetchall()]
            if not pids:
                return
            s.execute("SELECT pg_terminate_backend(pid) FROM unnest(%s::int[]) AS pid", (pids,))
            if time.monotonic() > deadline:
                raise PgbatonError(f"source sessions {pids} did not end after pg_terminate_backend")
            time.sleep(0.02)


def _read_lsn(r: _Run) -> dict[str, str]:
    """Per database, a marker in the WAL after the freeze, committed and flushed: its position.

    Every transaction that committed on the source before the freeze ends before the marker;
    a synchronous commit flushes the WAL at once, so the walsender can send it without waiting
    for the WAL writer.
    """
    lsn: dict[str, str] = {}
    for db in r.dbs:
        with _source_rw(r.cfg, db) as s:
            s.execute("SET synchronous_commit = on")
            row = s.execute("SELECT pg_logical_emit_message(true, 'pgbaton_switchover', %s)::text",
                            (r.name,)).fetchone()
            assert row is not None
            lsn[db] = str(row[0])
    r.lsn = lsn
    return lsn


def _wait_applied(r: _Run) -> None:
    if not r.lsn:
        rec = r.recorded.get(Action.read_source_lsn.value)
        r.lsn = dict(rec[1]) if rec and rec[1] else {}
    deadline = time.monotonic() + r.cfg.switch.timeout_seconds
    pending = dict(r.lsn)
    with connect(r.cfg.source, "source") as s:
        while pending:
            for db, lsn in list(pending.items()):
                row = s.execute("SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots "
                                "WHERE slot_name = %s", (lsn, object_name(r.name, db))).fetchone()
                if row is None:
                    raise PgbatonError(f"database {db}: the forward slot is gone")
                if row[0]:
                    del pending[db]
            if pending and time.monotonic() > deadline:
                raise PgbatonError(f"the target did not apply up to the source position within "
                                   f"{r.cfg.switch.timeout_seconds:.0f} s: {', '.join(pending)}")
            if pending:
                time.sleep(0.01)


def _copy_sequences(r: _Run) -> dict[str, dict[str, int]]:
    return sync_sequences(r.config, r.name)


def _create_reverse(r: _Run) -> None:
    """Per database: publication and slot on the target, a subscription without copy on the source."""
    with connect(r.cfg.source, "source") as s:
        row = s.execute("SELECT current_setting('server_version_num')::int").fetchone()
    source_major = int(row[0]) // 10000 if row else 0
    for db in r.dbs:
        rev = object_name(r.name, db, "rev")
        with connect(r.cfg.target, "target", db) as t:
            if t.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (rev,)).fetchone() is None:
                t.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(Ident(rev)))
            if not slot_exists(t, rev):
                t.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (rev,))
        with _source_rw(r.cfg, db) as s:
            if s.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (rev,)).fetchone() is None:
                # origin = none (PostgreSQL 16+) keeps changes that came in by replication from echoing back
                origin = sql.SQL(", origin = 'none'") if source_major >= 16 else sql.SQL("")
                target = r.cfg.target.conninfo(db, rev, for_peer=True, what="target")
                s.execute(sql.SQL("CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false, "
                                  "slot_name = {}, copy_data = false, synchronous_commit = 'on'{})")
                          .format(Ident(rev), sql.Literal(target), Ident(rev), sql.Literal(rev), origin))


def _retire_forward(r: _Run) -> None:
    for db in r.dbs:
        fwd = object_name(r.name, db)
        subid = execute._disable_subscription(r.cfg, db, fwd)
        with connect(r.cfg.source, "source") as s:
            execute._drop_slots(s, fwd, subid, r.cfg.switch.timeout_seconds, poll=0.01)
        execute._drop_subscription(r.cfg, db, fwd)
        with _source_rw(r.cfg, db) as s:
            s.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(Ident(fwd)))


def _point(r: _Run) -> None:
    r.switcher.point_to(r.cfg.target, r.dbs)


def _record_state(r: _Run) -> None:
    r.catalog.set_state(SWITCHED)


_ACTIONS: dict[Action, Callable[[_Run], object]] = {
    Action.pause_clients: _pause,
    Action.freeze_source: _freeze,
    Action.read_source_lsn: _read_lsn,
    Action.wait_applied: _wait_applied,
    Action.copy_sequences: _copy_sequences,
    Action.create_reverse: _create_reverse,
    Action.retire_forward: _retire_forward,
    Action.point_switcher: _point,
    Action.record_state: _record_state,
}


# -- undo -------------------------------------------------------------------------------------------
def _resume_on_source(r: _Run) -> None:
    if Action.point_switcher.value in r.recorded:  # it may have rewritten the entries already
        r.switcher.point_to(r.cfg.source, r.dbs)
    r.switcher.resume(r.dbs)


def _unfreeze(r: _Run) -> None:
    with _source_rw(r.cfg) as s:
        for db in r.dbs:
            s.execute(sql.SQL("ALTER DATABASE {} RESET default_transaction_read_only").format(Ident(db)))


def _drop_reverse(r: _Run) -> None:
    for db in r.dbs:
        rev = object_name(r.name, db, "rev")
        with _source_rw(r.cfg, db) as s:
            if s.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (rev,)).fetchone():
                s.execute(sql.SQL("ALTER SUBSCRIPTION {} DISABLE").format(Ident(rev)))
                s.execute(sql.SQL("ALTER SUBSCRIPTION {} SET (slot_name = NONE)").format(Ident(rev)))
                s.execute(sql.SQL("DROP SUBSCRIPTION {}").format(Ident(rev)))
        with connect(r.cfg.target, "target") as t:
            execute._drop_slots(t, rev, None, r.cfg.switch.timeout_seconds, poll=0.01)
        with connect(r.cfg.target, "target", db) as t:
            t.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(Ident(rev)))


def _restore_forward(r: _Run) -> None:
    """Publication, slot and subscription (no copy: the source was frozen and fully applied)."""
    for db in r.dbs:
        fwd = object_name(r.name, db)
        with _source_rw(r.cfg, db) as s:
            if s.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (fwd,)).fetchone() is None:
                s.execute(sql.SQL("CREATE PUBLICATION {} FOR ALL TABLES").format(Ident(fwd)))
            if not slot_exists(s, fwd):
                s.execute("SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (fwd,))
        with connect(r.cfg.target, "target", db) as t:
            exists = t.execute("SELECT 1 FROM pg_subscription WHERE subname = %s", (fwd,)).fetchone()
        if exists is None:
            execute._create_subscription(r.cfg, r.name, db, r.catalog, copy=False)
        else:
            execute._enable_subscription(r.cfg, r.name, db, r.catalog)


_UNDOS: dict[Undo, Callable[[_Run], None]] = {
    Undo.resume_clients: _resume_on_source,
    Undo.unfreeze_source: _unfreeze,
    Undo.drop_reverse: _drop_reverse,
    Undo.restore_forward: _restore_forward,
}


def _undo(r: _Run) -> list[str]:
    """Undo every step begun (a begun point_switcher counts only once done), newest first."""
    begun = [a for a in ORDER if a.value in r.recorded
             and (a is not Action.point_switcher or r.recorded[a.value][0] == "done")]
    undone, errors = [], []
    for u in rollback(begun):
        try:
            _UNDOS[u](r)
            undone.append(u.value)
        except (PgbatonError, psycopg.Error) as exc:
            log.error("migration %s: undo %s failed: %s", r.name, u.value, exc)
            errors.append(f"{u.value}: {exc}")
    if errors:
        raise PgbatonError("rollback incomplete (" + "; ".join(errors) + "); rerun `migrate switchover` to retry it")
    r.catalog.clear_steps()
    return undone


# -- the command -------------------------------------------------------------------------------------
def switchover(config: Config, name: str, *, switcher: Switcher | None = None,
               fail_at: Action | None = None) -> SwitchResult:
    """Move every database of the migration to the target together, or none of them.

    ``fail_at`` makes that step fail on purpose (tests of the rollback).
    """
    cfg = config.migration(name)
    res = SwitchResult(name, switched=False)
    with connect(cfg.target, "target") as tconn:
        catalog = Catalog(tconn, cfg.options.catalog_schema, name)
        state = catalog.state()
        if state is None:
            raise PgbatonError(f"migration {name} was not started; run `migrate start` first")
        catalog.ensure()
        if state == SWITCHED:
            res.switched, res.reasons = True, ["already switched over"]
            return res
        r = _Run(config, cfg, name, switcher or switcher_for(cfg), catalog, catalog.switch_steps())
        done = [a for a in ORDER if r.recorded.get(a.value, ("",))[0] == "done"]
        if Action.point_switcher in done:  # crashed after the switch: finish
            log.warning("migration %s: finishing an interrupted switchover", name)
            r.switcher.resume(r.dbs)
            todo = resume_from(done)
        elif r.recorded:  # crashed before the switch: undo what was begun
            log.warning("migration %s: rolling back an interrupted switchover", name)
            res.rolled_back = _undo(r)
            res.reasons = ["an interrupted switchover was rolled back; run `migrate switchover` again"]
            return res
        else:
            decision = may_switch(status(config, name), cfg.databases, cfg.switch.max_lag_bytes)
            if not decision.proceed:
                res.reasons = list(decision.reasons)
                return res
            todo = list(ORDER)
        paused_at: float | None = None
        for action in todo:
            catalog.record_step(action.value, "started")
            r.recorded[action.value] = ("started", None)
            log.info("migration %s: switchover %s", name, action.value)
            try:
                if action is fail_at:
                    raise PgbatonError(f"failure injected at {action.value}")
                began = time.monotonic()
                if action is Action.pause_clients:
                    paused_at = began
                detail = _ACTIONS[action](r)
                res.step_seconds[action.value] = round(time.monotonic() - began, 3)
            except Exception as exc:  # any failure before the switch: undo, then report
                log.error("migration %s: switchover step %s failed: %s", name, action.value, exc)
                undone = _undo(r)
                raise PgbatonError(f"switchover of {name} failed at {action.value}: {exc}; rolled back: "
                                   f"{', '.join(undone) or 'nothing'}") from None
            catalog.record_step(action.value, "done", detail)
            r.recorded[action.value] = ("done", detail)
            res.steps.append(action.value)
            if action is Action.point_switcher:
                r.switcher.resume(r.dbs)  # switched: a failure from here on is finished by a rerun
                if paused_at is not None:
                    res.paused_seconds = round(time.monotonic() - paused_at, 3)
        res.switched, res.source_lsn = True, r.lsn
    return res
