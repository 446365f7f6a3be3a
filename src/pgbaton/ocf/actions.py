"""The OCF actions: observe, ask a pure decision, act, report an OCF code."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable

import psycopg

from pgbaton.ha import decide, instance, probe, rebuild, rebuild_state
from pgbaton.ha.decide import StartPlan
from pgbaton.ha.model import Candidate, Position, PromotionFacts, RebuildStatus, Role, format_lsn, parse_lsn
from pgbaton.ha.rewind import rewind
from pgbaton.ha.sync import apply_sync_names, create_slot_remote, ensure_slots
from pgbaton.ocf.agent import Agent
from pgbaton.ocf.codes import Rc, monitor_code
from pgbaton.ocf.env import notification

log = logging.getLogger(__name__)

POSITION, IN_SYNC, PRIMARY_LSN = "position", "in-sync", "primary-lsn"


# --- start ----------------------------------------------------------------------------------

def start(agent: Agent) -> Rc:
    cfg = agent.cfg
    local = instance.observe(cfg)
    found = probe.find_primary(cfg)
    plan = decide.plan_start(local, found.view if found else None)
    log.info("start: role %s, primary %s -> %s", decide.classify(local).value,
             found.node if found else "none", plan.value)
    if decide.classify(local) is Role.CRASHED_PRIMARY:
        agent.attrs.set_score(cfg.node, decide.SCORE_NEVER)
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
        return _monitor_primary(agent)
    if role is Role.STANDBY:
        return _monitor_standby(agent)
    if role in (Role.CRASHED_PRIMARY, Role.REBUILDING):
        agent.attrs.set_score(cfg.node, decide.SCORE_NEVER)
    rc = monitor_code(role, agent.probe)
    if rc not in (Rc.SUCCESS, Rc.NOT_RUNNING):
        log.warning("monitor: %s -> %s", role.value, rc.name)
    return rc


def _monitor_primary(agent: Agent) -> Rc:
    cfg = agent.cfg
    try:
        with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
            replicas = probe.replicas(conn)
            position = probe.local_position(conn)
            members = [cfg.app_name_of(node) for node in cfg.peers]
            apply_sync_names(conn, decide.sync_standby_names(cfg.mode, replicas, members))
            ensure_slots(conn, [cfg.slot_of(node) for node in cfg.peers])
    except psycopg.Error as exc:
        log.error("monitor: the primary does not answer: %s", str(exc).strip())
        return Rc.FAILED_PROMOTED
    names = {cfg.app_name_of(node): node for node in cfg.peers}
    scores = decide.standby_scores(cfg.mode, replicas, names, cfg.force_promote)
    by_name = {r.application_name: r for r in replicas}
    for app, node in names.items():
        agent.attrs.set_score(node, scores[app])
        agent.attrs.set(node, IN_SYNC, "1" if decide.in_sync(cfg.mode, by_name.get(app)) else "0")
        agent.attrs.set(node, PRIMARY_LSN, format_lsn(position.lsn))
    agent.attrs.set_score(cfg.node, decide.SCORE_PRIMARY)
    return Rc.RUNNING_PROMOTED


def _monitor_standby(agent: Agent) -> Rc:
    cfg = agent.cfg
    streaming = False
    try:
        with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
            streaming = probe.receiving(conn)
    except psycopg.Error as exc:
        log.info("monitor: standby not answering yet: %s", str(exc).strip().splitlines()[0] if str(exc) else exc)
    reachable = streaming or probe.find_primary(cfg) is not None
    health = decide.stream_health(streaming, reachable, rebuild_state.failures(cfg), cfg.stream_failures)
    rebuild_state.set_failures(cfg, health.failures)
    score = decide.bootstrap_score(agent.attrs.get_score(cfg.node), reachable)
    if score is not None:
        agent.attrs.set_score(cfg.node, score)
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
        mine = probe.local_position(conn)
    others = []
    for node in cfg.peers:
        recorded = agent.attrs.get(node, POSITION)
        score = agent.attrs.get_score(node)
        others.append(Candidate(node, Position.decode(recorded) if recorded else None,
                                eligible=score is None or score >= 0))
    in_sync = agent.attrs.get(cfg.node, IN_SYNC)
    primary_lsn = agent.attrs.get(cfg.node, PRIMARY_LSN)
    facts = PromotionFacts(
        me=Candidate(cfg.node, mine), others=tuple(others), mode=cfg.mode,
        was_in_sync=None if in_sync is None else in_sync == "1",
        last_primary_lsn=parse_lsn(primary_lsn) if primary_lsn else None,
        max_lag=cfg.max_lag, forced=cfg.force_promote, primary_alive=probe.find_primary(cfg) is not None,
    )
    verdict = decide.may_promote(facts)
    if not verdict.allowed:
        log.error("promote refused: %s", verdict.reason)
        if verdict.prefer:
            agent.attrs.set_score(verdict.prefer, decide.SCORE_IN_SYNC)
            agent.attrs.set_score(cfg.node, decide.SCORE_BOOTSTRAP)
        return Rc.ERR_GENERIC
    log.info("promote: %s (at %s)", verdict.reason, mine.encode())
    instance.promote(cfg, timeout=agent.remaining())
    agent.attrs.set_score(cfg.node, decide.SCORE_PRIMARY)
    for name in (IN_SYNC, PRIMARY_LSN, POSITION):
        agent.attrs.set(cfg.node, name, None)
    return Rc.SUCCESS


def demote(agent: Agent) -> Rc:
    cfg = agent.cfg
    role = decide.classify(instance.observe(cfg))
    if role is Role.STANDBY:
        return Rc.SUCCESS
    if role is not Role.PRIMARY:
        # not a primary any more (a crashed one, typically, on every failover): demoting it is done.
        # Returning NOT_RUNNING would record a failed demote; the stop and start Pacemaker
        # schedules next bring it back as a standby (start rewinds it).
        log.info("demote: the instance is %s, not a running primary: nothing to demote", role.value)
        return Rc.SUCCESS
    instance.stop(cfg, timeout=agent.remaining() / 2)
    instance.configure_standby(cfg)
    instance.start(cfg, timeout=agent.remaining())
    agent.attrs.set_score(cfg.node, decide.SCORE_BOOTSTRAP)
    return Rc.SUCCESS


# --- notify, reload, validate -------------------------------------------------------------------

def notify(agent: Agent) -> Rc:
    note = notification(agent.call.env)
    cfg = agent.cfg
    if note.kind == "pre" and note.operation == "promote":
        if decide.classify(instance.observe(cfg)) is Role.STANDBY:
            try:
                with psycopg.connect(cfg.local_dsn(), autocommit=True) as conn:
                    position = probe.local_position(conn)
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
    return Rc.SUCCESS


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
