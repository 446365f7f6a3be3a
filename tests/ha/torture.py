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

log = logging.getLogger(__name__)

# fault -> how many promotions it may cause (more is a loop)
FAULTS: dict[str, int] = {
    "kill9-primary": 1,
    "kill9-standby": 0,
    "switch-and-back": 2,
    "pacemaker-restart": 1,
    "full-crash": 1,
    "slots-full": 0,
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
    """The primary when the cluster is settled: roles, a synchronous standby, the VIP."""
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
    return primary


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


def inject(c: Cluster, fault: str, rng: random.Random, primary: ClusterNode, standby: ClusterNode) -> str:
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


def one_iteration(c: Cluster, out: Path, i: int, rng: random.Random) -> Outcome:
    primary = wait(lambda: steady(c), STEADY_TIMEOUT, "a steady cluster before the fault")
    assert isinstance(primary, ClusterNode)
    standby = next(n for n in c.nodes if n is not primary)
    fault = rng.choice(sorted(FAULTS))
    tli = timeline(c, primary)
    time.sleep(rng.uniform(0.5, 3))              # let commits flow for a random while
    at = time.time()
    outcome = Outcome(i, fault, "")
    log.warning("iteration %s: %s (primary %s)", i, fault, primary.name)
    try:
        outcome.target = inject(c, fault, rng, primary, standby)
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
    except (AssertionError, RuntimeError, subprocess.TimeoutExpired) as exc:
        outcome.error = str(exc)[:300]
        log.error("iteration %s (%s) failed: %s", i, fault, outcome.error)
    return outcome


def run(seed: int, iterations: int, results: Path | None = None,
        on_outcome: Callable[[Outcome], None] | None = None, budget_s: float | None = None) -> Run:
    """``iterations`` faults (fewer when ``budget_s`` seconds run out first)."""
    started = time.monotonic()
    rng = random.Random(seed)
    record = Run(seed, iterations)
    with running_cluster() as c:
        bring_up(c)
        out = c.root / "writer.out"
        writer = start_writer(c, out)
        try:
            wait(lambda: out.read_text().count("ok ") > 50, 30, "writes flowing")
            for i in range(1, iterations + 1):
                if budget_s is not None and time.monotonic() - started > budget_s:
                    log.warning("time budget used up after %s faults", i - 1)
                    break
                outcome = one_iteration(c, out, i, rng)
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
    lines += ["", f"Acknowledged commits checked at the end: {total}."]
    return "\n".join(lines)
