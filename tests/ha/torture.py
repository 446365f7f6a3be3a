"""Seeded fault injection in the real two-node Pacemaker cluster (a workload, a nemesis, a checker).

A writer commits one row per transaction the whole time (``replication_mode=sync``) and
records every acknowledged commit.  Each iteration draws a fault from the seed, injects it,
waits until the cluster is back to one primary and one synchronous standby, and checks:

- exactly one primary, and the virtual IP on it;
- every acknowledged commit so far is on the primary;
- promotions bounded: the primary's timeline grew by at most what the fault explains;
- the time from the fault to the first commit acknowledged after it, and to the steady state.

``python scripts/ha_torture.py --seed 7 --iterations 50`` runs it; ``test_torture.py`` runs
a short seeded version.  A failing seed is a reproducible bug report.
"""

from __future__ import annotations

import json
import logging
import os
import random
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from pgbaton.sandbox.ha_cluster import Cluster, ClusterNode, _alive, _in_netns, sh
from pgbaton.sandbox.ha_pacemaker import (
    bring_up,
    node_env,
    running_cluster,
    start_writer,
    stop_writer,
    streaming,
    vip_node,
    wait,
)
from pgbaton.sandbox.ha_writer import parse
from tests.ha.timeline import Logs, phases

log = logging.getLogger(__name__)

# fault -> how many promotions it may cause (more is a loop)
FAULTS: dict[str, int] = {
    "kill9-primary": 1,
    "kill9-standby": 0,
    "switch-and-back": 2,
    "pacemaker-restart": 1,
    "full-crash": 1,
    "slots-full": 0,
    "standby-disk-full": 0,
}
STEADY_TIMEOUT = 180.0


@dataclass
class Outcome:
    iteration: int
    fault: str
    target: str
    failover_s: float | None = None         # fault -> first commit acknowledged on a new timeline
    stall_s: float | None = None            # longest time without an acknowledged commit
    steady_s: float | None = None           # fault -> one primary + one synchronous standby again
    promotions: int = 0
    lost: int = 0
    acked_total: int = 0
    error: str = ""
    load: float = 0.0                       # the machine's 1-minute load average at the fault
    detail: str = ""                        # what the fault saw (e.g. the space check's message)
    steps: dict[str, float] = field(default_factory=dict)   # fault -> each step, from the logs (timeline.py)

    @property
    def loop(self) -> bool:
        return self.promotions > FAULTS[self.fault]


@dataclass
class Run:
    seed: int
    iterations: int
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(not o.error and not o.lost and not o.loop for o in self.outcomes)


# --- observing the cluster -----------------------------------------------------------------

def primary_of(c: Cluster) -> ClusterNode | None:
    roles = c.roles()
    promoted = [n for n in c.nodes if roles.get(n.name) == "Promoted"]
    return promoted[0] if len(promoted) == 1 else None


def timeline(c: Cluster, node: ClusterNode) -> int:
    return int(c.psql(node, "SELECT substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)"), 16)


def steady(c: Cluster) -> ClusterNode | None:
    """The primary when the cluster is settled: roles, a synchronous standby recorded as one
    (promotion score 1000), the VIP."""
    roles = c.roles()
    if sorted(roles.values()) != ["Promoted", "Unpromoted"]:
        return None
    primary = primary_of(c)
    if primary is None:
        return None
    other = next(n for n in c.nodes if n is not primary)
    if streaming(c, c.nodes.index(primary)) != f"{other.name.replace('-', '_')}:sync":
        return None
    if vip_node(c) != primary.name:
        return None
    if promotion_score(c, other) != 1000:     # recorded in sync: the next failover is prepared
        return None
    return primary


def promotion_score(c: Cluster, node: ClusterNode) -> int | None:
    proc = sh(c.in_node(c.nodes[0], ["crm_attribute", "--node", node.name, "--name", "master-pgsql",
                                     "--lifetime", "reboot", "--query", "--quiet"]), check=False, timeout=20)
    try:
        return int(proc.stdout.strip())
    except ValueError:
        return None


def acks(out: Path) -> list[tuple[float, int]]:
    """(time, timeline) of every acknowledged commit."""
    found = []
    for line in out.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["ok"] and len(parts) >= 5:
            found.append((float(parts[3]), int(parts[4])))
    return found


def first_commit_on_new_timeline(out: Path, since: float, old_tli: int) -> float | None:
    for at, tli in acks(out):
        if at > since and tli > old_tli:
            return at - since
    return None


def longest_stall(out: Path, since: float, until: float) -> float:
    """The longest time without an acknowledged commit between ``since`` and ``until``."""
    times = [at for at, _ in acks(out) if since < at <= until]
    edges = [since, *times, until]
    return max(b - a for a, b in zip(edges, edges[1:], strict=False))


# --- faults -----------------------------------------------------------------------------------

def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:      # it went away meanwhile (killing one daemon ends others)
        pass


def kill_postmaster(node: ClusterNode) -> None:
    pid = node.postmaster_pid()
    if pid is not None and _alive(pid):
        _signal(pid, signal.SIGKILL)


def crm(c: Cluster, *args: str) -> None:
    sh(c.in_node(c.nodes[0], ["crm_resource", "--resource", "pgsql-clone", *args]), check=False)


def switch_and_back(c: Cluster, primary: ClusterNode, standby: ClusterNode) -> None:
    for target in (standby, primary):
        crm(c, "--move", "--promoted", "--node", target.name)

        def moved(goal: ClusterNode = target) -> bool:
            return primary_of(c) is goal

        wait(moved, 120, f"{target.name} promoted by the move")
        crm(c, "--clear")          # and at once back, without waiting for the standby


CLUSTER_DAEMONS = ("corosync", "pacemakerd", "pacemaker-")


def daemons_of(node: ClusterNode, names: tuple[str, ...] = CLUSTER_DAEMONS) -> list[int]:
    """PIDs of the cluster daemons running in this node's network namespace."""
    found = []
    for pid in _in_netns(node.ns):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip().startswith(names):
                found.append(pid)
        except OSError:
            continue
    return found


def restart_pacemaker(c: Cluster, node: ClusterNode) -> None:
    """Stop Pacemaker on one node (it stops its resources first), then start it again."""
    for pid in daemons_of(node, ("pacemakerd",)):
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 90
    while daemons_of(node, ("pacemakerd", "pacemaker-")) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in daemons_of(node, ("pacemakerd", "pacemaker-")):
        _signal(pid, signal.SIGKILL)
    time.sleep(1)
    env = {**os.environ, **node_env(node), "PCMK_logfile": str(node.home / "pacemaker.log")}
    proc = subprocess.Popen(c.in_node(node, ["pacemakerd"]), stdin=subprocess.DEVNULL,
                            stdout=open(node.home / "restart.out", "a"), stderr=subprocess.STDOUT, env=env,
                            start_new_session=True)
    node.pids["pacemakerd"] = proc.pid        # nsenter execs pacemakerd (no new PID namespace)


def full_crash(c: Cluster) -> None:
    """kill -9 of everything on both nodes (cluster daemons and PostgreSQL), then both boot again."""
    for node in c.nodes:
        kill_postmaster(node)
        for pid in daemons_of(node):
            _signal(pid, signal.SIGKILL)
    for node in c.nodes:
        deadline = time.monotonic() + 20
        while daemons_of(node) and time.monotonic() < deadline:
            time.sleep(0.1)
        node.pids.clear()
        for name in ("corosync.pid", "pacemakerd.pid"):
            (node.home / name).unlink(missing_ok=True)
    time.sleep(1)
    for node in c.nodes:
        c.start_node(node, node_env(node))
    c.wait_pids()


def fill_slots(c: Cluster, primary: ClusterNode, standby: ClusterNode, hold: float) -> None:
    """The standby loses its slot while down and every free slot is taken: the primary stays
    healthy (housekeeping error), the standby can come back once slots free up."""
    kill_postmaster(standby)
    slot = f"pgbaton_{standby.name.replace('-', '_')}"
    wait(lambda: c.psql(primary, f"SELECT count(*) FROM pg_replication_slots WHERE slot_name = '{slot}'"
                                 " AND NOT active") == "1", 30, "the standby's slot released")
    c.psql(primary, f"SELECT pg_drop_replication_slot('{slot}')")
    # take free slots until none is left (the primary's monitor may be creating one meanwhile)
    c.psql(primary, "DO $$ BEGIN FOR i IN 1..1000 LOOP BEGIN"
                    " PERFORM pg_create_physical_replication_slot('torture_filler_' || i);"
                    " EXCEPTION WHEN OTHERS THEN EXIT; END; END LOOP; END $$")
    time.sleep(hold)
    c.psql(primary, "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots"
                    " WHERE slot_name LIKE 'torture_filler_%'")


def _in_standby_ns(c: Cluster, node: ClusterNode, cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return sh(c.in_node(node, cmd), check=False, timeout=30)


def _stopped_on(c: Cluster, node: ClusterNode) -> bool:
    return node.name not in c.roles() and node.postmaster_pid() is None


def disk_full(c: Cluster, primary: ClusterNode, standby: ClusterNode) -> str:
    """The standby's file system is too small for a copy of the primary: its start must fail
    with the agent's free-space check (before any pg_basebackup), the primary go on alone.

    The standby is stopped (a ban), a tmpfs smaller than the primary's databases and WAL is
    mounted over its data folder inside its node's mount namespace (the node now sees an
    empty data directory and rebuilds), and the ban is lifted.  Once the agent's log names
    the missing space, the standby is stopped again, the tmpfs unmounted (its own data
    directory is back, shut down cleanly), and the standby rejoins.  Returns the check's
    message.
    """
    row = c.psql(primary, "SELECT (SELECT sum(pg_database_size(oid)) FROM pg_database)"
                          " + (SELECT coalesce(sum(size), 0) FROM pg_ls_waldir())")
    size_mb = max(int(row) // 2**20 // 2, 4)
    log_path = standby.home / "agent.log"
    seen = log_path.stat().st_size if log_path.exists() else 0
    crm(c, "--ban", "--node", standby.name)
    mounted = False
    try:
        wait(lambda: _stopped_on(c, standby), 90, f"{standby.name} stopped by the ban")
        proc = _in_standby_ns(c, standby, ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=1777",
                                           "pgbaton-torture", str(c.mnt)])
        if proc.returncode != 0:
            raise RuntimeError(f"mount tmpfs: {proc.stderr.strip()}")
        mounted = True
        crm(c, "--clear")

        def reported() -> str | None:
            with open(log_path, encoding="utf-8", errors="replace") as fh:
                fh.seek(seen)
                return next((line.split("rebuild failed: ", 1)[-1].strip() for line in fh
                             if "not enough free space" in line), None)

        message = wait(reported, 90, "the free-space check's report in the agent log")
        assert isinstance(message, str)
        assert primary_of(c) is primary, "the primary changed while the standby could not be rebuilt"
    finally:
        crm(c, "--ban", "--node", standby.name)
        try:
            wait(lambda: _stopped_on(c, standby), 90, f"{standby.name} stopped again")
        finally:
            if mounted:
                for _ in range(20):
                    if _in_standby_ns(c, standby, ["umount", str(c.mnt)]).returncode == 0:
                        break
                    time.sleep(0.5)
                else:
                    _in_standby_ns(c, standby, ["umount", "-l", str(c.mnt)])
            crm(c, "--clear")
            sh(c.in_node(c.nodes[0], ["crm_resource", "--cleanup", "--resource", "pgsql-clone"]), check=False)
    return message


def inject(c: Cluster, fault: str, rng: random.Random, primary: ClusterNode, standby: ClusterNode,
           outcome: Outcome) -> str:
    if fault == "standby-disk-full":
        outcome.detail = disk_full(c, primary, standby)
        return standby.name
    if fault == "kill9-primary":
        kill_postmaster(primary)
        return primary.name
    if fault == "kill9-standby":
        kill_postmaster(standby)
        return standby.name
    if fault == "switch-and-back":
        switch_and_back(c, primary, standby)
        return standby.name
    if fault == "pacemaker-restart":
        node = rng.choice(c.nodes)
        restart_pacemaker(c, node)
        return node.name
    if fault == "full-crash":
        full_crash(c)
        return "both"
    if fault == "slots-full":
        fill_slots(c, primary, standby, hold=rng.uniform(3, 8))
        return standby.name
    raise ValueError(fault)


# --- the run ---------------------------------------------------------------------------------

def check(c: Cluster, out: Path, primary: ClusterNode) -> tuple[int, int]:
    """(lost acknowledged commits, acknowledged commits so far) against the primary's table."""
    acked, _unknown = parse(out.read_text())
    present = {int(x) for x in c.psql(primary, "SELECT id FROM writes", timeout=30).split()}
    return len(acked - present), len(acked)


def one_iteration(c: Cluster, out: Path, i: int, rng: random.Random, logs: Logs | None = None,
                  faults: tuple[str, ...] = tuple(sorted(FAULTS))) -> Outcome:
    primary = wait(lambda: steady(c), STEADY_TIMEOUT, "a steady cluster before the fault")
    assert isinstance(primary, ClusterNode)
    standby = next(n for n in c.nodes if n is not primary)
    fault = rng.choice(faults)
    tli = timeline(c, primary)
    time.sleep(rng.uniform(0.5, 3))              # let commits flow for a random while
    at = time.time()
    outcome = Outcome(i, fault, "", load=round(os.getloadavg()[0], 1))
    log.warning("iteration %s: %s (primary %s)", i, fault, primary.name)
    try:
        outcome.target = inject(c, fault, rng, primary, standby, outcome)
        now_primary = wait(lambda: steady(c), STEADY_TIMEOUT, f"a steady cluster after {fault}")
        assert isinstance(now_primary, ClusterNode)
        settled = time.time()
        outcome.steady_s = round(settled - at, 2)
        time.sleep(1)
        failover = first_commit_on_new_timeline(out, at, tli)
        outcome.failover_s = round(failover, 2) if failover is not None else None
        outcome.stall_s = round(longest_stall(out, at, settled), 2)
        outcome.promotions = timeline(c, now_primary) - tli
        outcome.lost, outcome.acked_total = check(c, out, now_primary)
        if logs is not None:
            outcome.steps = phases(logs.read(), at, settled, tli)
    except (AssertionError, RuntimeError, subprocess.TimeoutExpired) as exc:
        outcome.error = str(exc)[:300]
        log.error("iteration %s (%s) failed: %s", i, fault, outcome.error)
    return outcome


def run(seed: int, iterations: int, results: Path | None = None,
        on_outcome: Callable[[Outcome], None] | None = None, budget_s: float | None = None,
        faults: tuple[str, ...] | None = None) -> Run:
    """``iterations`` faults drawn from ``faults`` (default: all), fewer when ``budget_s`` seconds run out."""
    chosen = tuple(sorted(faults or FAULTS))
    unknown = set(chosen) - set(FAULTS)
    if unknown:
        raise ValueError(f"unknown faults: {', '.join(sorted(unknown))} (known: {', '.join(sorted(FAULTS))})")
    started = time.monotonic()
    rng = random.Random(seed)
    record = Run(seed, iterations)
    with running_cluster() as c:
        bring_up(c)
        out = c.root / "writer.out"
        writer = start_writer(c, out)
        logs = Logs(c.root)
        try:
            wait(lambda: out.read_text().count("ok ") > 50, 30, "writes flowing")
            for i in range(1, iterations + 1):
                if budget_s is not None and time.monotonic() - started > budget_s:
                    log.warning("time budget used up after %s faults", i - 1)
                    break
                outcome = one_iteration(c, out, i, rng, logs, chosen)
                record.outcomes.append(outcome)
                if on_outcome:
                    on_outcome(outcome)
                if results:
                    results.write_text(json.dumps({"seed": seed, "iterations": iterations,
                                                   "outcomes": [asdict(o) for o in record.outcomes]}, indent=1))
                if outcome.error:
                    break          # the cluster may be in any state: stop and report
        finally:
            stop_writer(writer)
    return record


def table(run: Run) -> str:
    """Markdown summary by fault."""
    lines = [f"Seed {run.seed}, {len(run.outcomes)} faults.", "",
             "| fault | runs | lost commits | loops | errors | first commit on the new primary, median (max) s "
             "| longest write stall, median (max) s | steady again, median (max) s |",
             "|---|---|---|---|---|---|---|---|"]

    def stat(values: list[float]) -> str:
        return f"{statistics.median(values):.1f} ({max(values):.1f})" if values else "-"

    for fault in sorted(FAULTS):
        rows = [o for o in run.outcomes if o.fault == fault]
        if not rows:
            continue
        lines.append(f"| {fault} | {len(rows)} | {sum(o.lost for o in rows)} | {sum(o.loop for o in rows)} "
                     f"| {sum(bool(o.error) for o in rows)} "
                     f"| {stat([o.failover_s for o in rows if o.failover_s is not None])} "
                     f"| {stat([o.stall_s for o in rows if o.stall_s is not None])} "
                     f"| {stat([o.steady_s for o in rows if o.steady_s is not None])} |")
    total = run.outcomes[-1].acked_total if run.outcomes else 0
    loads = sorted(o.load for o in run.outcomes)
    lines += ["", f"Acknowledged commits checked at the end: {total}."]
    if loads:
        lines.append(f"Load average (1 min) at the faults: {loads[0]:.1f} to {loads[-1]:.1f}, "
                     f"median {statistics.median(loads):.1f}.")
    lines += by_load(run, "kill9-primary")
    lines += steps_table(run, "kill9-primary")
    return "\n".join(lines)


def by_load(run: Run, fault: str) -> list[str]:
    """Median first commit and steady-again times of one fault by the load average at the fault."""
    rows = [o for o in run.outcomes if o.fault == fault and o.failover_s is not None and o.steady_s is not None]
    if not rows:
        return []
    lines = ["", f"`{fault}` by the load average (1 min) at the fault:", "",
             "| load | runs | first commit, median (max) s | steady again, median (max) s |", "|---|---|---|---|"]
    for low, high in ((0, 5), (5, 10), (10, 1000)):
        part = [o for o in rows if low <= o.load < high]
        if part:
            fail = [o.failover_s for o in part if o.failover_s is not None]
            back = [o.steady_s for o in part if o.steady_s is not None]
            lines.append(f"| {low} to {high if high < 1000 else 'more'} | {len(part)} "
                         f"| {statistics.median(fail):.1f} ({max(fail):.1f}) "
                         f"| {statistics.median(back):.1f} ({max(back):.1f}) |")
    return lines


def steps_table(run: Run, fault: str) -> list[str]:
    """Median seconds from the fault to each step seen in the logs (timeline.py), in order."""
    rows = [o.steps for o in run.outcomes if o.fault == fault and o.steps]
    if not rows:
        return []
    names = sorted({k for r in rows for k in r}, key=lambda k: statistics.median(r[k] for r in rows if k in r))
    lines = ["", f"Where the seconds of `{fault}` go (from the logs, median over the runs that had the step):", "",
             "| step | runs | median s | max s |", "|---|---|---|---|"]
    for name in names:
        values = [r[name] for r in rows if name in r]
        lines.append(f"| {name} | {len(values)} | {statistics.median(values):.2f} | {max(values):.2f} |")
    return lines
