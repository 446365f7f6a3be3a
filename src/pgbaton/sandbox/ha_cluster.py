"""A real two-node Pacemaker + Corosync cluster on one machine (`make demo-ha`, the HA tests).

Each node is a network namespace (veth to a bridge in a third, "switch" namespace where
the test client runs) and a private mount + UTS namespace in which corosync and
pacemakerd run with the node's own hostname, its own /var/lib/pacemaker and its own
PostgreSQL folder mounted at the same path.  Nothing is added to the machine's own
network namespace; everything is stopped by PID and deleted at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from pgbaton.sandbox.servers import PG15_BIN, _pid_alive

SUBNET = "10.231.77"
PG_BIN = PG15_BIN

# what a pg_rewind-able pair needs; the sandbox defaults are tuned for speed instead
HA_SETTINGS = {
    "full_page_writes": "on",
    "synchronous_commit": "on",
    "fsync": "on",
    "wal_log_hints": "on",
    "wal_keep_size": "'256MB'",
    "hot_standby": "on",
    "wal_level": "replica",
    "wal_sender_timeout": "'5s'",
    "wal_receiver_status_interval": "'1s'",
    "wal_retrieve_retry_interval": "'500ms'",
    "listen_addresses": "'127.0.0.1'",
}


def sh(cmd: list[str], check: bool = True, timeout: float = 60, **kw: object) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, **kw)  # type: ignore[call-overload]
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} -> {proc.returncode}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc  # type: ignore[no-any-return]


@dataclass
class ClusterNode:
    name: str
    ns: str
    ip: str
    home: Path                  # this node's private files
    pids: dict[str, int] = field(default_factory=dict)

    @property
    def pg(self) -> Path:       # seen at the shared mount point inside the node
        return self.home / "pg"

    @property
    def pgdata(self) -> Path:
        return self.pg / "data"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


class Cluster:
    def __init__(self, root: Path, port: int) -> None:
        tag = uuid.uuid4().hex[:6]
        self.root = root
        self.port = port
        self.switch = f"pgbsw{tag}"
        self.mnt = root / "mnt"                 # every node sees its own pg folder here
        self.nodes = [ClusterNode(f"pgb-node{i}", f"pgbn{i}{tag}", f"{SUBNET}.{i}", root / f"node{i}")
                      for i in (1, 2)]
        self.namespaces: list[str] = []

    # --- network ---------------------------------------------------------------------------
    def create_network(self) -> None:
        for ns in [self.switch, *(n.ns for n in self.nodes)]:
            sh(["ip", "netns", "add", ns])
            self.namespaces.append(ns)
            sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        sh(["ip", "-n", self.switch, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", self.switch, "addr", "add", f"{SUBNET}.100/24", "dev", "br0"])
        sh(["ip", "-n", self.switch, "link", "set", "br0", "up"])
        for i, node in enumerate(self.nodes, 1):
            sh(["ip", "-n", self.switch, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
                "netns", node.ns])
            sh(["ip", "-n", self.switch, "link", "set", f"v{i}", "master", "br0", "up"])
            sh(["ip", "-n", node.ns, "addr", "add", f"{node.ip}/24", "dev", "eth0"])
            sh(["ip", "-n", node.ns, "link", "set", "eth0", "up"])

    def in_switch(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.switch, *cmd]

    def in_node(self, node: ClusterNode, cmd: list[str]) -> list[str]:
        """Run inside the node: its network, mounts (own /run) and hostname."""
        pid = node.pids.get("corosync")
        if pid is None:
            return ["ip", "netns", "exec", node.ns, *cmd]
        return ["nsenter", "-t", str(pid), "-n", "-m", "-u", "--", *cmd]

    # --- files ---------------------------------------------------------------------------------
    def prepare_node(self, node: ClusterNode, cib: Path) -> None:
        lib = node.home / "pacemaker"
        for sub in ("cib", "pengine", "blackbox", "cores"):
            (lib / sub).mkdir(parents=True, exist_ok=True)
            shutil.chown(lib / sub, "hacluster", "haclient")
            (lib / sub).chmod(0o750)
        shutil.copy(cib, lib / "cib" / "cib.xml")
        shutil.chown(lib / "cib" / "cib.xml", "hacluster", "haclient")
        (lib / "cib" / "cib.xml").chmod(0o600)
        (node.home / "corosync").mkdir(exist_ok=True)
        # libqb uses socket files in /run (not abstract sockets) inside a network namespace:
        # each node gets its own /run
        for sub in ("run", "run/crm", "run/resource-agents"):
            (node.home / sub).mkdir(exist_ok=True)
        shutil.chown(node.home / "run" / "crm", "hacluster", "haclient")
        (node.home / "run" / "crm").chmod(0o750)
        node.pg.mkdir(exist_ok=True)
        node.pg.chmod(0o1777)
        nodelist = "\n".join(
            f"  node {{\n    ring0_addr: {n.ip}\n    name: {n.name}\n    nodeid: {i}\n  }}"
            for i, n in enumerate(self.nodes, 1))
        (node.home / "corosync.conf").write_text(f"""totem {{
  version: 2
  cluster_name: pgbaton-test
  transport: knet
  crypto_cipher: none
  crypto_hash: none
  token: 1000
}}
nodelist {{
{nodelist}
}}
quorum {{
  provider: corosync_votequorum
  two_node: 1
}}
logging {{
  to_logfile: yes
  logfile: {node.home}/corosync.log
  to_syslog: no
  to_stderr: no
}}
system {{
  state_dir: {node.home}/corosync
}}
""")

    def start_node(self, node: ClusterNode, env: dict[str, str]) -> None:
        script = f"""set -e
hostname {node.name}
mount --bind {node.home}/pacemaker /var/lib/pacemaker
mount --bind {node.home}/run /run
mount --bind {node.pg} {self.mnt}
corosync -f -c {node.home}/corosync.conf &
echo $! > {node.home}/corosync.pid
sleep 1
pacemakerd &
echo $! > {node.home}/pacemakerd.pid
wait
"""
        full_env = {**os.environ, **env, "PCMK_logfile": str(node.home / "pacemaker.log")}
        subprocess.Popen(["ip", "netns", "exec", node.ns, *["unshare", "--mount", "--uts", "--propagation", "private",
                                             "sh", "-c", script]],
                         stdin=subprocess.DEVNULL, stdout=open(node.home / "start.out", "w"),
                         stderr=subprocess.STDOUT, env=full_env, start_new_session=True)

    def wait_pids(self) -> None:
        deadline = time.monotonic() + 20
        for node in self.nodes:
            for daemon in ("corosync", "pacemakerd"):
                path = node.home / f"{daemon}.pid"
                while not path.exists() or not path.read_text().strip():
                    if time.monotonic() > deadline:
                        out = (node.home / "start.out").read_text()
                        raise RuntimeError(f"{daemon} of {node.name} did not start: {out}")
                    time.sleep(0.1)
                node.pids[daemon] = int(path.read_text())

    # --- cluster queries ---------------------------------------------------------------------
    def crm_mon(self, node: ClusterNode | None = None) -> ET.Element | None:
        node = node or self.nodes[0]
        proc = sh(self.in_node(node, ["crm_mon", "-1", "--output-as=xml"]), check=False, timeout=20)
        try:
            return ET.fromstring(proc.stdout) if proc.stdout.strip().startswith("<") else None
        except ET.ParseError:
            return None

    def roles(self) -> dict[str, str]:
        """node -> role of the pgsql clone instance there (Promoted, Unpromoted, Stopped...)."""
        out: dict[str, str] = {}
        for n in self.nodes:
            mon = self.crm_mon(n)
            if mon is None:
                continue
            for res in mon.iter("resource"):
                if "pgbaton" in str(res.get("resource_agent")) and res.get("active") == "true":
                    for nd in res.iter("node"):
                        out[str(nd.get("name"))] = str(res.get("role"))
            if out:
                break
        return out

    def online(self) -> int:
        mon = self.crm_mon()
        if mon is None:
            return 0
        return sum(1 for n in mon.iter("node") if n.get("online") == "true" and n.get("id") is not None
                   and n.get("type") == "member")

    def psql(self, node: ClusterNode, query: str, timeout: float = 10) -> str:
        return self.psql_at(node.ip, query, timeout)

    def psql_at(self, host: str, query: str, timeout: float = 10) -> str:
        proc = sh(self.in_switch(["psql", "-X", "-At", "-h", host, "-p", str(self.port), "-U", "postgres",
                                  "-d", "postgres", "-c", query]), check=False, timeout=timeout,
                  env={**os.environ, "PGCONNECT_TIMEOUT": "2"})
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.strip())
        return proc.stdout.strip()

    def cibadmin(self, *args: str) -> None:
        sh(self.in_node(self.nodes[0], ["cibadmin", *args]))

    # --- teardown ------------------------------------------------------------------------------
    def stop(self) -> None:
        """TERM pacemakerd (it stops the resources), then corosync; KILL what lingers; drop the namespaces."""
        for daemon, wait in (("pacemakerd", 60.0), ("corosync", 15.0)):
            for node in self.nodes:
                pid = node.pids.get(daemon)
                if pid and _alive(pid):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + wait
            for node in self.nodes:
                pid = node.pids.get(daemon)
                while pid and _alive(pid) and time.monotonic() < deadline:
                    time.sleep(0.2)
                if pid and _alive(pid):
                    os.kill(pid, signal.SIGKILL)
        for node in self.nodes:
            # daemons started again by a fault (a Pacemaker restart) are not in node.pids
            for pid in _in_netns(node.ns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for node in self.nodes:
            pid = node.postmaster_pid()
            if pid and _alive(pid) and b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        for ns in self.namespaces:
            sh(["ip", "netns", "del", ns], check=False)


def _in_netns(ns: str) -> list[int]:
    """Live corosync/Pacemaker processes in a network namespace of the test."""
    try:
        netns = os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.stat(entry / "ns" / "net").st_ino != netns:
                continue
            comm = (entry / "comm").read_text().strip()
        except OSError:
            continue
        if comm.startswith(("corosync", "pacemakerd", "pacemaker-")) and _alive(int(entry.name)):
            found.append(int(entry.name))
    return found


_alive = _pid_alive


def dump(obj: object) -> str:
    return json.dumps(obj, indent=1, default=str)
