"""`make demo-ha`: a two-node Pacemaker cluster running pgbaton's agent, a kill -9 of the
primary while a client writes, and the failover time.

    python -m pgbaton.sandbox.demo_ha

Each node is a network namespace on this machine with its own hostname, /var/lib/pacemaker
and PostgreSQL 15 (``sandbox/ha_cluster.py`` and ``ha_pacemaker.py``, the harness the cluster
tests use too; as root). The story: node1 is promoted, node2 is built from it and streams in
sync; a client writes through a multi-host connection string; the primary's postmaster gets
kill -9; the demo prints how long until the first commit on the new primary, when the old
primary is back as a standby, that every acknowledged commit is on both nodes, and what
`pgbaton metrics show` reports for the nodes before and after. Everything is stopped and
removed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from pgbaton.sandbox import ha_pacemaker as pcmk
from pgbaton.sandbox.ha_cluster import Cluster, ClusterNode
from pgbaton.sandbox.ha_writer import parse


def _metrics(c: Cluster, node: ClusterNode, cfg: Path) -> list[str]:
    """`pgbaton metrics show` run inside a node (it reaches both nodes and the cluster's attributes)."""
    proc = subprocess.run(c.in_node(node, [sys.executable, "-m", "pgbaton", "-c", str(cfg), "metrics", "show"]),
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        print(f"demo-ha: metrics show failed: {proc.stderr.strip()[-500:]}", flush=True)
    numbers = ("pgbaton_ha_node_up", "pgbaton_ha_node_timeline", "pgbaton_ha_node_promotion_score")
    states = ("pgbaton_ha_node_role", "pgbaton_ha_node_sync_state")   # only the current state (value 1)
    lines = []
    for line in proc.stdout.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in numbers or (name in states and not line.endswith(" 0.0")):
            lines.append(line)
    return lines


def _show(title: str, lines: list[str]) -> None:
    print(f"demo-ha: {title}", flush=True)
    for line in lines:
        print(f"    {line}", flush=True)


def run() -> None:
    if not pcmk.usable():
        raise SystemExit("demo-ha: needs root, pacemaker, corosync, iproute2 and psql (`make venv-full` installs them)")
    from pgbaton.ocf.install import install_agent

    installed = not pcmk.AGENT.exists()
    if installed:
        # installed here rather than by the harness, which would remove it at the end even if
        # another cluster (a test running at the same time) still uses it
        install_agent("pgsql", python=sys.executable)
        print(f"demo-ha: agent installed as ocf:pgbaton:pgsql ({pcmk.AGENT})", flush=True)
    try:
        _story()
    finally:
        if installed and not _other_clusters():
            pcmk.AGENT.unlink(missing_ok=True)


def _other_clusters() -> bool:
    """Whether some pacemakerd still runs on this machine (then the agent stays installed)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "pacemakerd":
                    return True
            except OSError:
                continue
    return False


def _story() -> None:
    started = time.monotonic()
    print("demo-ha: starting a two-node Pacemaker + Corosync cluster (network namespaces on this machine)", flush=True)
    with pcmk.running_cluster() as c:
        n1, n2 = c.nodes
        cfg = c.root / "observe.yaml"
        cfg.write_text(yaml.safe_dump({"target": {"host": "127.0.0.1"}, "observe": {
            "ha_nodes": {n.name: {"host": n.ip, "port": c.port, "user": "postgres", "connect_timeout": 2}
                         for n in c.nodes},
            "ha_resource": "pgsql"}}))
        pcmk.bring_up(c)
        print(f"demo-ha: {n1.name} ({n1.ip}) is the primary, {n2.name} ({n2.ip}) streams from it in sync; "
              f"cluster up in {time.monotonic() - started:.0f} s", flush=True)
        _show("pgbaton metrics show (inside the cluster):", _metrics(c, n1, cfg))

        out = c.root / "writer.out"
        writer = pcmk.start_writer(c, out)
        try:
            pcmk.wait(lambda: out.read_text().count("\nok ") > 200, 60, "writes flowing")
            pid = n1.postmaster_pid()
            assert pid is not None
            print(f"demo-ha: a client writes through host={n1.ip},{n2.ip} target_session_attrs=read-write; "
                  f"kill -9 of the primary's postmaster (pid {pid})", flush=True)
            killed_at = time.time()
            os.kill(pid, signal.SIGKILL)

            def first_write_on_node2() -> float | None:
                for line in out.read_text().splitlines():
                    parts = line.split()
                    if parts[:1] == ["ok"] and parts[2] == n2.ip and float(parts[3]) > killed_at:
                        return float(parts[3])
                return None

            new_write = pcmk.wait(first_write_on_node2, 180, "a write accepted by node2")
            assert isinstance(new_write, float)
            failover = new_write - killed_at
            print(f"demo-ha: failover: {failover:.2f} s from kill -9 to the first commit on {n2.name}", flush=True)
            pcmk.wait(lambda: c.roles() == {n1.name: "Unpromoted", n2.name: "Promoted"}, 180,
                      "old primary back as a standby")
            pcmk.wait(lambda: pcmk.streaming(c, 1) == "pgb_node1:sync", 180, "old primary streams from the new one")
            rejoin = time.time() - killed_at
            print(f"demo-ha: {n1.name} is back as a standby of {n2.name}, in sync, {rejoin:.0f} s after the kill",
                  flush=True)
            time.sleep(1)
        finally:
            pcmk.stop_writer(writer)
        acked, unknown = parse(out.read_text())
        on_new = {int(x) for x in c.psql(n2, "SELECT id FROM writes").split()}
        lost = acked - on_new
        pcmk.wait(lambda: c.psql(n1, "SELECT count(*) FROM writes") == str(len(on_new)), 60, "old primary caught up")
        _show("pgbaton metrics show after the failover:", _metrics(c, n2, cfg))
        print(f"demo-ha: {len(acked):,} commits acknowledged to the client, {len(lost)} lost, "
              f"{len(unknown)} in doubt at the kill; failover {failover:.2f} s; "
              f"whole demo {time.monotonic() - started:.0f} s", flush=True)
        if lost:
            raise SystemExit(f"demo-ha: commits lost: {sorted(lost)[:20]}")
    print("demo-ha: cluster stopped and removed", flush=True)


if __name__ == "__main__":
    run()
