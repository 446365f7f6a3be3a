"""Two real PostgreSQL 15 nodes driven through the OCF agent, the way Pacemaker drives it.

Every action runs the agent as a separate process (``python -m pgbaton.ocf ACTION``) with
OCF environment variables; cluster attributes go to files (PGBATON_ATTR_DIR) instead of
a running Pacemaker.  Servers live in a temp folder on free loopback ports and are stopped
by the PIDs in their postmaster.pid files.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from pgbaton.sandbox.ha_cluster import HA_SETTINGS, PG_BIN
from pgbaton.sandbox.servers import PostgresServer, free_port


@dataclass
class Node:
    name: str
    base: Path
    port: int

    @property
    def pgdata(self) -> Path:
        return self.base / "data"

    def dsn(self, dbname: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user=postgres connect_timeout=3"

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.pgdata / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def sql(self, query: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            cur = conn.execute(query, params or None)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


@dataclass
class Pair:
    root: Path
    nodes: dict[str, Node]
    params: dict[str, str] = field(default_factory=dict)

    @property
    def attr_dir(self) -> Path:
        return self.root / "attrs"

    def env(self, node: str, **extra: str) -> dict[str, str]:
        n = self.nodes[node]
        hosts = " ".join(f"{m.name}=127.0.0.1:{m.port}" for m in self.nodes.values())
        env = {k: v for k, v in os.environ.items() if not k.startswith("OCF_")}
        env.update({
            "OCF_ROOT": "/usr/lib/ocf",
            "OCF_RESOURCE_INSTANCE": "pgsql",
            "OCF_RESKEY_CRM_meta_on_node": node,
            "OCF_RESKEY_CRM_meta_timeout": "60000",
            "OCF_RESKEY_pgdata": str(n.pgdata),
            "OCF_RESKEY_bindir": str(PG_BIN),
            "OCF_RESKEY_pgport": str(n.port),
            "OCF_RESKEY_socketdir": str(n.base),
            "OCF_RESKEY_node_hosts": hosts,
            "OCF_RESKEY_stream_failures": "2",
            "PGBATON_ATTR_DIR": str(self.attr_dir),
            "PGBATON_OCF_LOG": str(self.root / "agent.log"),
        })
        env.update({f"OCF_RESKEY_{k}": v for k, v in self.params.items()})
        env.update({(k if k.startswith(("OCF_", "PGBATON_")) else f"OCF_RESKEY_{k}"): v for k, v in extra.items()})
        return env

    def run(self, node: str, action: str, **extra: str) -> int:
        proc = subprocess.run([sys.executable, "-m", "pgbaton.ocf", action], env=self.env(node, **extra),
                              capture_output=True, text=True, timeout=180, check=False)
        if proc.stderr.strip():
            sys.stderr.write(proc.stderr)
        return proc.returncode

    def notify(self, node: str, kind: str, operation: str, promote: str = "") -> int:
        return self.run(node, "notify", OCF_RESKEY_CRM_meta_notify_type=kind,
                        OCF_RESKEY_CRM_meta_notify_operation=operation,
                        OCF_RESKEY_CRM_meta_notify_promote_uname=promote)

    def attrs(self) -> dict[str, str]:
        """Transient attributes: promotion scores, positions (lost when the whole cluster restarts)."""
        path = self.attr_dir / "pgsql.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def durable(self) -> dict[str, str]:
        """Durable attributes (the CIB's node attributes): whether a node holds every acknowledged commit."""
        path = self.attr_dir / "pgsql.durable.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def restart_cluster(self) -> None:
        """What a full cluster restart does to the attributes: the transient ones are gone."""
        (self.attr_dir / "pgsql.json").unlink(missing_ok=True)

    def kill9(self, node: str) -> None:
        pid = self.nodes[node].postmaster_pid()
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not _alive(pid), 10, "postmaster gone after kill -9")

    def stop_all(self) -> None:
        for node in self.nodes.values():
            pid = node.postmaster_pid()
            if pid is not None and _alive(pid):
                subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(node.pgdata),
                                "-m", "immediate", "-w", "stop"], capture_output=True, check=False, timeout=60)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(check: object, timeout: float, what: str) -> None:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except psycopg.Error:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for: {what}")


@pytest.fixture
def pair() -> Iterator[Pair]:
    """n1 with a fresh initdb (stopped), n2 with an empty data directory."""
    root = Path(tempfile.mkdtemp(prefix="pgbaton-ha-"))
    root.chmod(0o1777)
    server = PostgresServer(root / "n1", bin_dir=PG_BIN, settings=HA_SETTINGS)
    server.init()
    nodes = {"n1": Node("n1", root / "n1", server.port), "n2": Node("n2", root / "n2", free_port())}
    nodes["n2"].base.mkdir(mode=0o1777)
    nodes["n2"].base.chmod(0o1777)
    p = Pair(root, nodes)
    try:
        yield p
    finally:
        p.stop_all()
        if os.environ.get("PGBATON_KEEP_SANDBOX"):
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
