"""The OCF actions: observe, ask a pure decision, act, report an OCF code."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pgbaton.ha import decide, instance, probe, rebuild, rebuild_state
from pgbaton.ha.decide import StartPlan
from pgbaton.ha.model import (
    Candidate,
    DataDir,
    Position,
    PromotionFacts,
    RebuildStatus,
    ReplicaStat,
    Role,
    format_lsn,
    parse_lsn,
)
from pgbaton.ha.rewind import rewind
from pgbaton.ha.sync import apply_sync_names, create_slot_remote, ensure_slots
from pgbaton.ocf.agent import Agent
from pgbaton.ocf.attrs import AttrWriteError
from pgbaton.ocf.codes import Rc, monitor_code
from pgbaton.ocf.env import notification

if TYPE_CHECKING:
    import psycopg
else:
    from pgbaton.ha import lazy_psycopg as psycopg

log = logging.getLogger(__name__)

# transient node attributes (lost when the whole cluster restarts)
POSITION, PRIMARY_LSN, HOUSEKEEPING, DIVERGED, ARCHIVE = (
    "position", "primary-lsn", "housekeeping", "diverged", "archive")
# durable node attribute: "1" while the node holds every acknowledged commit, "0" when it may not
HOLDS_ALL = "in-sync"


# --- start ----------------------------------------------------------------------------------

def start(agent: Agent) -> Rc:
    cfg = agent.cfg
    if instance.postmaster_pid(cfg) is None and _settings_problems(agent):
        return Rc.ERR_CONFIGURED
    local = instance.observe(cfg)
    found = probe.find_primary(cfg)
    plan = decide.plan_start(local, found.view if found else None)
    log.info("start: role %s, primary %s -> %s", decide.classify(local).value,
             found.node if found else "none", plan.value)
    if plan is StartPlan.ALREADY_STANDBY:
        return Rc.SUCCESS
    if plan in (StartPlan.REFUSE_PRIMARY, StartPlan.NO_SOURCE):
        log.error("start: %s", "the instance runs as a primary outside the cluster" if plan is
                  StartPlan.REFUSE_PRIMARY else "the data directory must be rebuilt but no primary is reachable")
        return Rc.ERR_GENERIC
    if plan is StartPlan.WAIT_REBUILD:
        return _wait_rebuild(agent)
    if not local.running:
        instance.clear_stale_lock(cfg)
    if found is not None:
        create_slot_remote(cfg.remote_dsn(found.host, found.port, replication=True), cfg.slot_of(cfg.node))
    if plan is StartPlan.REWIND:
        assert found is not None
        rewound = rewind(cfg, found, agent.remaining(30))
        plan = StartPlan.START_STANDBY if rewound else decide.after_failed_rewind(found.view)
        log.info("start: after pg_rewind -> %s", plan.value)
    if plan is StartPlan.REBUILD:
        assert found is not None
        rebuild.spawn(cfg, found.host, found.port)
        return _wait_rebuild(agent)
    rebuild_state.clear(cfg)
    rebuild_state.set_failures(cfg, 0)
    instance.configure_standby(cfg, (found.host, found.port) if found and not cfg.primary_host else None)
    instance.start(cfg, timeout=agent.remaining())
    return Rc.SUCCESS


def _wait_rebuild(agent: Agent) -> Rc:
    """Wait for the background rebuild while the start timeout allows; then monitor follows it."""
    deadline = time.monotonic() + agent.remaining(10)
    while time.monotonic() < deadline:
        state = rebuild_state.status(agent.cfg)
        if state is RebuildStatus.DONE:
            return Rc.SUCCESS if instance.postmaster_pid(agent.cfg) else Rc.ERR_GENERIC
        if state is not RebuildStatus.RUNNING:
            log.error("rebuild failed: %s", rebuild_state.read(agent.cfg).get("error"))
            return Rc.ERR_GENERIC
        time.sleep(0.5)
    log.info("rebuild still running; start returns and monitor reports the standby as being built")
    return Rc.SUCCESS


# --- stop -----------------------------------------------------------------------------------

def stop(agent: Agent) -> Rc:
    cfg = agent.cfg
    pid = rebuild_state.worker_pid(cfg)
    if pid is not None and rebuild_state.status(cfg) is RebuildStatus.RUNNING:
        log.info("stop: ending rebuild worker %s", pid)
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + 10
        while rebuild_state.worker_pid(cfg) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        rebuild_state.write(cfg, status="failed", pid=pid, error="stopped by the cluster")
    instance.stop(cfg, timeout=agent.remaining())
    rebuild_state.set_failures(cfg, 0)
    return Rc.SUCCESS


# --- monitor --------------------------------------------------------------------------------

def monitor(agent: Agent) -> Rc:
    cfg = agent.cfg
    role = decide.classify(instance.observe(cfg))
    if role is Role.PRIMARY:
        rc = _monitor_primary(agent)
        if rc is not Rc.FAILED_PROMOTED:
            return rc
        # killed between the look at its process and the connection: a crash like any other
        role = decide.classify(instance.observe(cfg))
        if role is not Role.CRASHED_PRIMARY:
            return rc
    if role is Role.STANDBY:
        return _monitor_standby(agent)
    if role in (Role.CRASHED_PRIMARY, Role.REBUILDING):
        dropped = agent.attrs.set_score(cfg.node, decide.SCORE_NEVER)
        if role is Role.CRASHED_PRIMARY and dropped and agent.attrs.live and not agent.probe:
            _await_role_move(agent)
    rc = monitor_code(role, agent.probe)
    if rc not in (Rc.SUCCESS, Rc.NOT_RUNNING):
        log.warning("monitor: %s -> %s", role.value, rc.name)
    return rc


# how long the monitor of a crashed primary gives the cluster to act on its dropped score
ROLE_MOVE_WAIT = 10.0


def _await_role_move(agent: Agent) -> None:
    """The primary crashed and its promotion score was just dropped: let the cluster move the
    promoted role (which cancels this monitor) before reporting the failure.

    The score change alone makes Pacemaker demote this node (demote starts it as a standby
    at once) and promote the standby: one transition. A failure that reaches the scheduler
    first makes it recover this node in place: demote, stop, start (a standby start that
    waits for crash recovery), four more rounds of notifications, and only then promote the
    standby; with the old score still in the CIB it even promotes this node again. That
    cost seconds on every failover, more on a loaded machine. If nothing cancels this
    monitor within ``ROLE_MOVE_WAIT`` seconds it reports the failure after all.
    """
    wait = min(ROLE_MOVE_WAIT, agent.remaining(2.0) / 2)
    log.warning("monitor: the primary crashed; waiting up to %.0f s for the cluster to move the promoted role", wait)
    time.sleep(wait)


def _monitor_primary(agent: Agent) -> Rc:
    cfg = agent.cfg
    members = {cfg.app_name_of(node): node for node in cfg.peers}
    try:
        with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
            replicas = probe.replicas(conn)
            position = probe.local_position(conn, cfg.pgdata)
            problems, replicas = _primary_housekeeping(agent, conn, replicas, members)
    except psycopg.Error as exc:
        log.error("monitor: the primary does not answer: %s", str(exc).strip())
        return Rc.FAILED_PROMOTED
    # a housekeeping failure leaves a primary that takes writes: report it, do not fail it
    agent.attrs.set(cfg.node, HOUSEKEEPING, "; ".join(problems)[:500] or None)
    scores = decide.standby_scores(cfg.mode, replicas, members, cfg.force_promote)
    for app, node in members.items():
        agent.attrs.set_score(node, scores[app])
        agent.attrs.set(node, PRIMARY_LSN, format_lsn(position.lsn))
    agent.attrs.set_score(cfg.node, decide.SCORE_PRIMARY)
    return Rc.RUNNING_PROMOTED


def _primary_housekeeping(agent: Agent, conn: psycopg.Connection, replicas: list[ReplicaStat],
                          members: dict[str, str]) -> tuple[list[str], list[ReplicaStat]]:
    """Records, synchronous_standby_names and slots; returns the problems met (each logged here)
    and the standbys as they are afterwards."""
    cfg = agent.cfg
    problems: list[str] = []
    recorded = {node: _holds_all(agent, node) for node in members.values()}
    plan = decide.plan_sync(cfg.mode, replicas, members, recorded)
    try:
        # before synchronous_standby_names drops a standby, it is recorded as not holding everything
        for node in plan.lose:
            agent.attrs.set_durable(node, HOLDS_ALL, "0")
        agent.attrs.set_durable(cfg.node, HOLDS_ALL, "1")
    except AttrWriteError as exc:
        problems.append(f"{exc}; synchronous_standby_names left as it is")
        log.error("monitor: %s", problems[-1])
    else:
        try:
            if apply_sync_names(conn, plan.names) and plan.names:
                # a standby just named is synchronous within moments: record it now, not a monitor later
                replicas = _await_sync_state(conn, replicas)
                plan = decide.SyncPlan(plan.names, plan.lose,
                                       decide.plan_sync(cfg.mode, replicas, members, recorded).gain)
        except psycopg.Error as exc:
            problems.append(f"synchronous_standby_names not changed: {str(exc).strip()}")
            log.error("monitor: %s", problems[-1])
        else:
            for node in plan.gain:
                try:
                    agent.attrs.set_durable(node, HOLDS_ALL, "1")
                except AttrWriteError as exc:
                    problems.append(str(exc))
                    log.error("monitor: %s", problems[-1])
    try:
        ensure_slots(conn, [cfg.slot_of(node) for node in cfg.peers])
    except psycopg.Error as exc:
        problems.append(f"replication slots: {str(exc).strip()}")
        log.error("monitor: %s", problems[-1])
    try:
        _report_archiving(agent, conn)
    except psycopg.Error as exc:
        problems.append(f"pg_stat_archiver: {str(exc).strip()}")
        log.error("monitor: %s", problems[-1])
    return problems, replicas


def _await_sync_state(conn: psycopg.Connection, before: list[ReplicaStat], wait: float = 1.0) -> list[ReplicaStat]:
    """pg_stat_replication once a streaming standby reports itself synchronous (or after ``wait`` s)."""
    deadline = time.monotonic() + wait
    replicas = before
    while time.monotonic() < deadline:
        time.sleep(0.05)
        replicas = probe.replicas(conn)
        if any(r.state == "streaming" and r.sync_state in ("sync", "quorum") for r in replicas):
            break
    return replicas


def _report_archiving(agent: Agent, conn: psycopg.Connection) -> None:
    """Archive failures go to the ``archive`` node attribute (logged when that changes)."""
    row = conn.execute(
        "SELECT current_setting('archive_mode'), failed_count, last_failed_wal,"
        " extract(epoch FROM last_failed_time)::float8, extract(epoch FROM last_archived_time)::float8"
        " FROM pg_stat_archiver").fetchone()
    if row is None:
        return
    note = decide.archive_problem(str(row[0]), int(row[1] or 0), row[2], row[3], row[4])
    if agent.attrs.get(agent.cfg.node, ARCHIVE) != note:
        if note:
            log.warning("monitor: %s", note)
        else:
            log.info("monitor: WAL archiving works again")
        agent.attrs.set(agent.cfg.node, ARCHIVE, note)


def _holds_all(agent: Agent, node: str) -> bool | None:
    value = agent.attrs.get_durable(node, HOLDS_ALL)
    return None if value is None else value == "1"


def _candidate(agent: Agent, node: str, position: Position | None = None) -> Candidate:
    if position is None:
        recorded = agent.attrs.get(node, POSITION)
        position = Position.decode(recorded) if recorded else None
    return Candidate(node, position, _holds_all(agent, node), agent.attrs.get_score(node))


def _promotion_facts(agent: Agent, mine: Position, primary_alive: bool) -> PromotionFacts:
    cfg = agent.cfg
    primary_lsn = agent.attrs.get(cfg.node, PRIMARY_LSN)
    return PromotionFacts(
        me=_candidate(agent, cfg.node, mine), others=tuple(_candidate(agent, node) for node in cfg.peers),
        mode=cfg.mode, last_primary_lsn=parse_lsn(primary_lsn) if primary_lsn else None,
        max_lag=cfg.max_lag, forced=cfg.force_promote, primary_alive=primary_alive,
    )


def _monitor_standby(agent: Agent) -> Rc:
    cfg = agent.cfg
    streaming = False
    position: Position | None = None
    try:
        with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
            streaming = probe.receiving(conn)
            if not streaming:
                position = probe.local_position(conn, cfg.pgdata)
    except psycopg.Error as exc:
        replay = instance.replay_before_consistency(cfg)
        if replay is not None:
            # a long replay before the standby is consistent: it cannot stream yet, and is not broken
            log.info("monitor: replaying WAL before consistency (%s)", replay)
            return Rc.SUCCESS
        log.info("monitor: standby not answering yet: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
    found = None if streaming else probe.find_primary(cfg)
    reachable = streaming or found is not None
    if found is not None and position is not None and decide.standby_diverged(position, found.view):
        # it can never stream from this primary: say so now, start (after the cluster's stop) rewinds it
        note = (f"at {position.encode()}, past where the primary {found.node} (timeline {found.view.timeline}) "
                "left this timeline")
        log.error("monitor: timeline divergence: %s", note)
        agent.attrs.set(cfg.node, DIVERGED, note)
        return Rc.ERR_GENERIC
    if streaming:
        agent.attrs.set(cfg.node, DIVERGED, None)
    health = decide.stream_health(streaming, reachable, rebuild_state.failures(cfg), cfg.stream_failures)
    rebuild_state.set_failures(cfg, health.failures)
    if not reachable and position is not None:
        # no primary anywhere: report the position and take part in the election
        agent.attrs.set(cfg.node, POSITION, position.encode())
        agent.attrs.set_score(cfg.node, decide.lone_standby_score(_promotion_facts(agent, position, False)))
    if not health.healthy:
        log.error("monitor: a primary runs but this standby has not streamed from it for %s monitors",
                  health.failures)
        return Rc.ERR_GENERIC
    if health.failures:
        log.warning("monitor: not streaming from the primary (%s/%s)", health.failures, cfg.stream_failures)
    return Rc.SUCCESS


# --- promote / demote -------------------------------------------------------------------------

def promote(agent: Agent) -> Rc:
    cfg = agent.cfg
    role = decide.classify(instance.observe(cfg))
    if role is Role.PRIMARY:
        return Rc.SUCCESS
    if role is not Role.STANDBY:
        log.error("promote: the instance is %s, not a running standby", role.value)
        return Rc.ERR_GENERIC
    with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
        mine = probe.local_position(conn, cfg.pgdata)
    verdict = decide.may_promote(_promotion_facts(agent, mine, probe.find_primary(cfg) is not None))
    if not verdict.allowed:
        log.error("promote refused: %s", verdict.reason)
        if verdict.prefer:
            agent.attrs.set_score(verdict.prefer, decide.SCORE_IN_SYNC)
            agent.attrs.set_score(cfg.node, decide.SCORE_CANDIDATE)
        return Rc.ERR_GENERIC
    log.info("promote: %s (at %s)", verdict.reason, mine.encode())
    try:
        # from now on only this node holds every acknowledged commit, until a standby is in sync
        agent.attrs.set_durable_all(HOLDS_ALL, {cfg.node: "1", **{node: "0" for node in cfg.peers}})
    except AttrWriteError as exc:
        log.error("promote refused: %s", exc)
        return Rc.ERR_GENERIC
    instance.promote(cfg, timeout=agent.remaining())
    try:
        # the standbys stream through their slots: have them now, not at the next monitor
        with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
            ensure_slots(conn, [cfg.slot_of(node) for node in cfg.peers])
    except psycopg.Error as exc:
        log.warning("promote: slots not created yet (the monitor retries): %s", str(exc).strip())
    agent.attrs.set_score(cfg.node, decide.SCORE_PRIMARY)
    for name in (PRIMARY_LSN, POSITION):
        agent.attrs.set(cfg.node, name, None)
    return Rc.SUCCESS


def demote(agent: Agent) -> Rc:
    cfg = agent.cfg
    role = decide.classify(instance.observe(cfg))
    if role is Role.STANDBY:
        return Rc.SUCCESS
    if role in (Role.CRASHED_PRIMARY, Role.CRASHED_STANDBY, Role.STOPPED):
        # a crashed primary, on every failover. Demoted means running as a standby: start it as
        # one, without waiting for its crash recovery (the promotion elsewhere waits for this
        # demote). Returning NOT_RUNNING instead would record a failed demote each time. Once a
        # new primary runs, a diverged standby is seen by its monitor and rewound by start.
        log.info("demote: the instance is %s: starting it as a standby", role.value)
        instance.clear_stale_lock(cfg)
        instance.configure_standby(cfg)
        instance.start(cfg, timeout=agent.remaining(), wait=False)
        return Rc.SUCCESS
    if role is not Role.PRIMARY:
        log.info("demote: the instance is %s, not a primary: nothing to demote", role.value)
        return Rc.SUCCESS
    _let_standbys_catch_up(agent, min(10.0, agent.remaining() / 4))
    instance.stop(cfg, timeout=agent.remaining() / 2)
    instance.configure_standby(cfg)
    instance.start(cfg, timeout=agent.remaining())
    agent.attrs.set_score(cfg.node, decide.SCORE_CANDIDATE)
    return Rc.SUCCESS


def _let_standbys_catch_up(agent: Agent, wait: float) -> None:
    """Before a planned demote: give the standbys that run (their server answers on its port;
    right after a switch one may not stream yet) a moment to stream everything, so the next
    promotion finds a standby holding all the WAL; the clean shutdown then sends the rest."""
    cfg = agent.cfg
    running = {cfg.app_name_of(node) for node, address in cfg.peers.items() if probe.port_open(*address)}
    deadline = time.monotonic() + wait
    try:
        with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
            while True:
                row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
                target = parse_lsn(str(row[0])) if row else 0
                done = {r.application_name for r in probe.replicas(conn)
                        if r.state == "streaming" and r.flush_lsn is not None and r.flush_lsn >= target}
                behind = sorted(running - done)
                if not behind or time.monotonic() > deadline:
                    if behind:
                        log.warning("demote: %s still behind after %.0f s", ", ".join(behind), wait)
                    return
                time.sleep(0.1)
    except psycopg.Error as exc:
        log.warning("demote: could not check the standbys: %s", str(exc).strip())


# --- notify, reload, validate -------------------------------------------------------------------

def notify(agent: Agent) -> Rc:
    note = notification(agent.call.env)
    cfg = agent.cfg
    if note.kind == "pre" and note.operation == "promote":
        standby = decide.classify(instance.observe(cfg)) is Role.STANDBY
        if standby and instance.starting_up(cfg):
            # still in crash recovery (a primary just killed, demoted): it takes no connection yet
            log.info("notify pre-promote: no position, the server is still starting up")
        elif standby:
            try:
                with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
                    position = probe.local_position(conn, cfg.pgdata)
                agent.attrs.set(cfg.node, POSITION, position.encode())
                log.info("notify pre-promote: recorded position %s", position.encode())
            except psycopg.Error as exc:
                log.warning("notify pre-promote: no position: %s", exc)
    elif note.kind == "post" and note.operation == "promote":
        agent.attrs.set(cfg.node, POSITION, None)
    return Rc.SUCCESS


def reload(agent: Agent) -> Rc:
    # every call reads the parameters afresh: nothing to reload in a running process
    return Rc.SUCCESS


def validate_all(agent: Agent) -> Rc:
    return Rc.ERR_CONFIGURED if _settings_problems(agent) else Rc.SUCCESS


def _settings_problems(agent: Agent) -> list[str]:
    """Check the settings the agent relies on (a data directory that can run; else nothing to check)."""
    cfg = agent.cfg
    local = instance.observe(cfg)
    if local.datadir is not DataDir.USABLE or local.control is None:
        return []
    problems = decide.setting_problems(instance.server_settings(cfg, decide.CHECKED_SETTINGS),
                                       local.control.checksums, len(cfg.nodes))
    for problem in problems:
        log.error("configuration: %s", problem)
    return problems


ACTIONS: dict[str, Callable[[Agent], Rc]] = {
    "start": start,
    "stop": stop,
    "monitor": monitor,
    "promote": promote,
    "demote": demote,
    "notify": notify,
    "reload": reload,
    "validate-all": validate_all,
}
