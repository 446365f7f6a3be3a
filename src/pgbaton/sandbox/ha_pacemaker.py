"""Setting up the two-node Pacemaker cluster: CIB, agent, nodes, a writer.

Shared by `make demo-ha` (``demo_ha.py``), ``tests/ha/test_pacemaker.py`` (one kill -9
failover) and ``tests/ha/torture.py`` (seeded faults).  Needs root, pacemaker, corosync,
iproute2 and psql (see ``usable``).
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
from contextlib import contextmanager
from pathlib import Path

from pgbaton.ocf.install import install_agent
from pgbaton.sandbox.ha_cluster import HA_SETTINGS, PG_BIN, SUBNET, Cluster, ClusterNode, sh
from pgbaton.sandbox.servers import PostgresServer, free_port

log = logging.getLogger(__name__)

AGENT = Path("/usr/lib/ocf/resource.d/pgbaton/pgsql")
# load-threshold=0%: no throttling by the machine's CPU load. Above it Pacemaker runs one
# action at a time in the whole cluster, and on a shared machine that serialized a failover's
# notifications on both nodes (docs/ha.md, "Where the seconds go")
CRM_CONFIG = {"stonith-enabled": "false", "no-quorum-policy": "ignore", "dc-deadtime": "2s",
              "start-failure-is-fatal": "false", "cluster-recheck-interval": "30s", "load-threshold": "0%"}
VIP = f"{SUBNET}.50"
TOOLS = ("pacemakerd", "corosync", "ip", "unshare", "psql")


def usable() -> bool:
    return os.geteuid() == 0 and all(shutil.which(t) for t in TOOLS)


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


def clone_xml(c: Cluster, params: dict[str, str] | None = None) -> str:
    values = {
        "pgdata": str(c.mnt / "data"), "bindir": str(PG_BIN), "pgport": str(c.port), "socketdir": str(c.mnt),
        "node_hosts": " ".join(f"{n.name}={n.ip}" for n in c.nodes), "replication_mode": "sync",
        "stream_failures": "2", **(params or {}),
    }
    nvs = "".join(f'<nvpair id="pgsql-ia-{k}" name="{k}" value="{v}"/>' for k, v in values.items())
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
        # old failures expire: a stale monitor failure made Pacemaker restart a healthy
        # standby after the next role change (docs/ha.md, "Where the seconds go")
        '<nvpair id="pgsql-clone-failure-timeout" name="failure-timeout" value="30s"/>'
        '</meta_attributes>'
        f'<primitive id="pgsql" class="ocf" provider="pgbaton" type="pgsql">'
        f'<instance_attributes id="pgsql-ia">{nvs}</instance_attributes>'
        f'<operations>{op_xml}</operations></primitive></clone>'
    )


VIP_XML = (
    '<primitive id="pgsql-vip" class="ocf" provider="heartbeat" type="IPaddr2">'
    '<instance_attributes id="pgsql-vip-ia">'
    f'<nvpair id="pgsql-vip-ip" name="ip" value="{VIP}"/>'
    '<nvpair id="pgsql-vip-mask" name="cidr_netmask" value="24"/>'
    '<nvpair id="pgsql-vip-nic" name="nic" value="eth0"/>'
    '</instance_attributes>'
    '<operations><op id="pgsql-vip-monitor" name="monitor" interval="2s" timeout="10s"/></operations>'
    '</primitive>'
)
VIP_CONSTRAINTS = (
    '<rsc_colocation id="vip-with-primary" rsc="pgsql-vip" with-rsc="pgsql-clone" with-rsc-role="Promoted"'
    ' score="INFINITY"/>',
    '<rsc_order id="vip-after-promote" first="pgsql-clone" first-action="promote" then="pgsql-vip"'
    ' then-action="start" kind="Mandatory" symmetrical="false"/>',
    '<rsc_order id="vip-before-demote" first="pgsql-clone" first-action="demote" then="pgsql-vip"'
    ' then-action="stop" kind="Optional" symmetrical="false"/>',
)


def seed_cib(c: Cluster, params: dict[str, str] | None = None, vip: bool = True) -> Path:
    seed = c.root / "seed.xml"
    seed.write_text(sh(["cibadmin", "--empty"]).stdout)
    env = {**os.environ, "CIB_file": str(seed)}
    for name, value in CRM_CONFIG.items():
        sh(["crm_attribute", "--type", "crm_config", "--name", name, "--update", value], env=env)
    sh(["cibadmin", "--create", "--scope", "resources", "--xml-text", clone_xml(c, params)], env=env)
    if vip and Path("/usr/lib/ocf/resource.d/heartbeat/IPaddr2").exists():
        sh(["cibadmin", "--create", "--scope", "resources", "--xml-text", VIP_XML], env=env)
        for xml in VIP_CONSTRAINTS:
            sh(["cibadmin", "--create", "--scope", "constraints", "--xml-text", xml], env=env)
    # the second node joins once the first one is a primary (it is built from it)
    ban = f'<rsc_location id="hold-node2" rsc="pgsql-clone" node="{c.nodes[1].name}" score="-INFINITY"/>'
    sh(["cibadmin", "--create", "--scope", "constraints", "--xml-text", ban], env=env)
    return seed


@contextmanager
def running_cluster(params: dict[str, str] | None = None, vip: bool = True) -> Iterator[Cluster]:
    """Two nodes up (node 1 initialized, node 2 empty and held back), everything removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="pgbaton-pcmk-"))
    root.chmod(0o755)
    c = Cluster(root, free_port())
    c.mnt.mkdir(mode=0o1777)
    c.mnt.chmod(0o1777)
    had_agent = AGENT.exists()
    try:
        install_agent("pgsql", python=sys.executable)
        first = c.nodes[0]
        first.home.mkdir()
        settings = {**HA_SETTINGS, "listen_addresses": "'*'", "unix_socket_directories": f"'{c.mnt}'"}
        server = PostgresServer(first.pg, bin_dir=PG_BIN, port=c.port, settings=settings)
        server.init()
        with open(first.pgdata / "pg_hba.conf", "a", encoding="utf-8") as fh:
            fh.write(f"host all all {SUBNET}.0/24 trust\nhost replication all {SUBNET}.0/24 trust\n")
        c.nodes[1].home.mkdir()
        seed = seed_cib(c, params, vip)
        for node in c.nodes:
            c.prepare_node(node, seed)
        c.create_network()
        for node in c.nodes:
            c.start_node(node, node_env(node))
        c.wait_pids()
        yield c
    finally:
        c.stop()
        # the agent path is fixed: leave it while another test cluster (another network namespace) runs
        others = [ns for ns in sh(["ip", "netns", "list"], check=False).stdout.split() if ns.startswith("pgbn")]
        if not had_agent and not others:
            AGENT.unlink(missing_ok=True)
            try:
                AGENT.parent.rmdir()
            except OSError:
                pass
        if os.environ.get("PGBATON_KEEP_SANDBOX"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def node_env(node: ClusterNode) -> dict[str, str]:
    return {"PGBATON_OCF_LOG": str(node.home / "agent.log")}


def streaming(c: Cluster, primary: int) -> str:
    return c.psql(c.nodes[primary], "SELECT string_agg(application_name || ':' || sync_state, ',')"
                                    " FROM pg_stat_replication WHERE state = 'streaming'"
                                    " AND application_name LIKE 'pgb_node%'")


def vip_node(c: Cluster) -> str | None:
    """The node whose eth0 holds the virtual IP."""
    for node in c.nodes:
        out = sh(["ip", "-n", node.ns, "-o", "addr", "show", "dev", "eth0"], check=False).stdout
        if f" {VIP}/" in out:
            return node.name
    return None


def bring_up(c: Cluster) -> None:
    """Node 1 promoted, node 2 built from it and in sync."""
    n1, n2 = c.nodes
    wait(lambda: c.roles().get(n1.name) == "Promoted", 90, "node1 promoted")
    c.psql(n1, "CREATE TABLE writes (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
    c.cibadmin("--delete", "--scope", "constraints", "--xml-text", '<rsc_location id="hold-node2"/>')
    wait(lambda: streaming(c, 0) == "pgb_node2:sync", 120, "node2 rebuilt and in sync")
    wait(lambda: c.roles() == {n1.name: "Promoted", n2.name: "Unpromoted"}, 30, "roles settled")


def start_writer(c: Cluster, out: Path, start_id: int = 1) -> subprocess.Popen[bytes]:
    conninfo = (" ".join([f"host={','.join(n.ip for n in c.nodes)}", f"port={','.join(str(c.port) for _ in c.nodes)}",
                          "user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2"]))
    return subprocess.Popen(c.in_switch([*writer_command(), conninfo, str(start_id)]),
                            stdout=open(out, "a"), stderr=subprocess.STDOUT, env=writer_env())


def writer_command() -> list[str]:
    """The cluster writer (``ha_writer.py``) as a command: this Python, this pgbaton."""
    return [sys.executable, "-m", "pgbaton.sandbox.ha_writer"]


def writer_env() -> dict[str, str]:
    """The environment for ``writer_command``: this pgbaton importable even when not installed."""
    src = str(Path(__file__).resolve().parents[2])
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{path}" if path else src}


def stop_writer(writer: subprocess.Popen[bytes]) -> None:
    writer.send_signal(signal.SIGTERM)
    try:
        writer.wait(timeout=20)
    except subprocess.TimeoutExpired:
        writer.kill()
        writer.wait()
