"""Failover in a real two-node Pacemaker + Corosync cluster (network namespaces on this machine).

kill -9 of the primary's postmaster while a client writes: the standby is promoted, the old
primary comes back as a standby, and every acknowledged commit is on both nodes.
Run alone with ``pytest tests/ha -m pacemaker``; needs root, pacemaker, corosync and iproute2.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pgbaton.ocf.install import install_agent
from pgbaton.sandbox.servers import PostgresServer, free_port
from tests.ha.cluster import SUBNET, Cluster, sh
from tests.ha.conftest import HA_SETTINGS, PG_BIN

log = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.pacemaker,
    pytest.mark.skipif(os.geteuid() != 0 or not all(shutil.which(t) for t in ("pacemakerd", "corosync", "ip",
                                                                               "unshare", "psql")),
                       reason="needs root, pacemaker, corosync, iproute2 and psql"),
]

AGENT = Path("/usr/lib/ocf/resource.d/pgbaton/pgsql")
CRM_CONFIG = {"stonith-enabled": "false", "no-quorum-policy": "ignore", "dc-deadtime": "2s",
              "start-failure-is-fatal": "false", "cluster-recheck-interval": "30s"}


def wait(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what} (last: {last})")


def clone_xml(c: Cluster) -> str:
    params = {
        "pgdata": str(c.mnt / "data"), "bindir": str(PG_BIN), "pgport": str(c.port), "socketdir": str(c.mnt),
        "node_hosts": " ".join(f"{n.name}={n.ip}" for n in c.nodes), "replication_mode": "sync",
        "stream_failures": "2",
    }
    nvs = "".join(f'<nvpair id="pgsql-ia-{k}" name="{k}" value="{v}"/>' for k, v in params.items())
    ops = [("start", "0", "120s", ""), ("stop", "0", "60s", ""), ("promote", "0", "60s", ""),
           ("demote", "0", "60s", ""), ("notify", "0", "30s", ""),
           ("monitor", "2s", "15s", "Promoted"), ("monitor", "3s", "15s", "Unpromoted")]
    op_xml = "".join(
        f'<op id="pgsql-{name}-{interval}" name="{name}" interval="{interval}" timeout="{timeout}"'
        + (f' role="{role}"' if role else "") + "/>" for name, interval, timeout, role in ops)
    return (
        '<clone id="pgsql-clone"><meta_attributes id="pgsql-clone-meta">'
        '<nvpair id="pgsql-clone-promotable" name="promotable" value="true"/>'
        '<nvpair id="pgsql-clone-notify" name="notify" value="true"/>'
        '<nvpair id="pgsql-clone-max" name="clone-max" value="2"/>'
        '<nvpair id="pgsql-clone-node-max" name="clone-node-max" value="1"/>'
        '<nvpair id="pgsql-clone-promoted-max" name="promoted-max" value="1"/>'
        '</meta_attributes>'
        f'<primitive id="pgsql" class="ocf" provider="pgbaton" type="pgsql">'
        f'<instance_attributes id="pgsql-ia">{nvs}</instance_attributes>'
        f'<operations>{op_xml}</operations></primitive></clone>'
    )


def seed_cib(c: Cluster) -> Path:
    seed = c.root / "seed.xml"
    seed.write_text(sh(["cibadmin", "--empty"]).stdout)
    env = {**os.environ, "CIB_file": str(seed)}
    for name, value in CRM_CONFIG.items():
        sh(["crm_attribute", "--type", "crm_config", "--name", name, "--update", value], env=env)
    sh(["cibadmin", "--create", "--scope", "resources", "--xml-text", clone_xml(c)], env=env)
    # the second node joins once the first one is a primary (it is built from it)
    ban = f'<rsc_location id="hold-node2" rsc="pgsql-clone" node="{c.nodes[1].name}" score="-INFINITY"/>'
    sh(["cibadmin", "--create", "--scope", "constraints", "--xml-text", ban], env=env)
    return seed


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    root = Path(tempfile.mkdtemp(prefix="pgbaton-pcmk-"))
    root.chmod(0o755)
    c = Cluster(root, free_port())
    c.mnt.mkdir(mode=0o1777)
    c.mnt.chmod(0o1777)
    had_agent = AGENT.exists()
    try:
        install_agent("pgsql", python=sys.executable)
        # node 1: an initialized data directory; node 2: nothing (the agent builds it)
        first = c.nodes[0]
        first.home.mkdir()
        settings = {**HA_SETTINGS, "listen_addresses": "'*'", "unix_socket_directories": f"'{c.mnt}'"}
        server = PostgresServer(first.pg, bin_dir=PG_BIN, port=c.port, settings=settings)
        server.init()
        with open(first.pgdata / "pg_hba.conf", "a", encoding="utf-8") as fh:
            fh.write(f"host all all {SUBNET}.0/24 trust\nhost replication all {SUBNET}.0/24 trust\n")
        c.nodes[1].home.mkdir()
        seed = seed_cib(c)
        for node in c.nodes:
            c.prepare_node(node, seed)
        c.create_network()
        for node in c.nodes:
            c.start_node(node, {"PGBATON_OCF_LOG": str(node.home / "agent.log")})
        c.wait_pids()
        yield c
    finally:
        c.stop()
        if not had_agent:
            AGENT.unlink(missing_ok=True)
            try:
                AGENT.parent.rmdir()
            except OSError:
                pass
        if os.environ.get("PGBATON_KEEP_SANDBOX"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def streaming(c: Cluster, primary: int) -> str:
    return c.psql(c.nodes[primary], "SELECT string_agg(application_name || ':' || sync_state, ',')"
                                    " FROM pg_stat_replication WHERE state = 'streaming'"
                                    " AND application_name LIKE 'pgb_node%'")


def test_kill9_primary_fails_over_without_losing_commits(cluster: Cluster) -> None:
    c = cluster
    n1, n2 = c.nodes
    t_start = time.monotonic()
    wait(lambda: c.roles().get(n1.name) == "Promoted", 90, "node1 promoted")
    log.info("cluster up, node1 promoted after %.1f s", time.monotonic() - t_start)
    c.psql(n1, "CREATE TABLE writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
    c.cibadmin("--delete", "--scope", "constraints", "--xml-text", '<rsc_location id="hold-node2"/>')
    wait(lambda: streaming(c, 0) == "pgb_node2:sync", 120, "node2 rebuilt and in sync")
    wait(lambda: c.roles() == {n1.name: "Promoted", n2.name: "Unpromoted"}, 30, "roles settled")

    out = c.root / "writer.out"
    conninfo = (f"host={n1.ip},{n2.ip} port={c.port},{c.port} user=postgres dbname=postgres "
                "target_session_attrs=read-write connect_timeout=2")
    writer = subprocess.Popen(c.in_switch([sys.executable, str(Path(__file__).with_name("cluster_writer.py")),
                                           conninfo]),
                              stdout=open(out, "w"), stderr=subprocess.STDOUT, cwd=str(Path(__file__).parents[2]),
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")})
    try:
        wait(lambda: out.read_text().count("\nok ") > 200, 30, "writes flowing")
        pid = n1.postmaster_pid()
        assert pid is not None
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)

        def first_write_on_node2() -> float | None:
            for line in out.read_text().splitlines():
                parts = line.split()
                if parts[:1] == ["ok"] and parts[2] == n2.ip and float(parts[3]) > killed_at:
                    return float(parts[3])
            return None

        new_write = wait(first_write_on_node2, 120, "a write accepted by node2")
        assert isinstance(new_write, float)
        failover = new_write - killed_at
        log.warning("kill -9 to first commit on the new primary: %.2f s", failover)
        wait(lambda: c.roles() == {n1.name: "Unpromoted", n2.name: "Promoted"}, 120,
             "old primary back as a standby")
        wait(lambda: streaming(c, 1) == "pgb_node1:sync", 120, "old primary streams from the new one")
        time.sleep(1)
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=20)

    acked = [int(line.split()[1]) for line in out.read_text().splitlines() if line.startswith("ok ")]
    assert len(acked) > 200
    on_new = {int(x) for x in c.psql(n2, "SELECT id FROM writes").split()}
    assert set(acked) <= on_new, f"lost commits: {sorted(set(acked) - on_new)[:20]}"
    wait(lambda: c.psql(n1, "SELECT count(*) FROM writes") == str(len(on_new)), 30, "old primary caught up")
    on_old = {int(x) for x in c.psql(n1, "SELECT id FROM writes").split()}
    assert set(acked) <= on_old
    print(f"failover (kill -9 -> first commit on the new primary): {failover:.2f} s; {len(acked)} commits kept")
