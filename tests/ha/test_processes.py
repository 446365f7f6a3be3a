"""Child processes of the agent end with it: timeouts end the whole process group."""

from __future__ import annotations

import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pgbaton.ha.config import NodeConfig
from pgbaton.ha.instance import run_as
from tests.ha.conftest import PG_BIN, Pair, wait_for
from tests.ha.test_agent import OK, bootstrap


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if marker in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def test_timeout_ends_grandchildren(tmp_path: Path) -> None:
    cfg = NodeConfig(node="n1", pgdata=tmp_path / "data", bindir=PG_BIN)
    marker = f"{time.time() % 1000:.3f}{uuid.uuid4().int % 1000}"
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        # like runuser -> pg_basebackup: the tool is a grandchild of the agent
        run_as(cfg, ["sh", "-c", f"sleep 1{marker} & sleep 2{marker}; wait"], timeout=1)
    assert time.monotonic() - t0 < 10
    wait_for(lambda: not processes_with(marker), 5, "no process of the timed-out command left")


def test_basebackup_timeout_leaves_no_pg_basebackup_behind(pair: Pair) -> None:
    bootstrap(pair)
    n1, n2 = pair.nodes["n1"], pair.nodes["n2"]
    assert pair.run("n2", "stop") == OK
    assert pair.run("n1", "monitor") == 8
    n1.sql("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 40000) g")
    (n2.pgdata / "global" / "pg_control").unlink()
    assert pair.run("n2", "start", basebackup_options="--max-rate=1M", basebackup_timeout="3",
                    OCF_RESKEY_CRM_meta_timeout="10000") == OK
    wait_for(lambda: (n2.base / ".data.pgbaton" / "rebuild.json").read_text().count('"failed"'), 30,
             "the rebuild times out")
    wait_for(lambda: not processes_with(str(n2.pgdata)), 5, "no pg_basebackup left writing into PGDATA")
    wait_for(lambda: n1.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'pgbaton_n2'") == [(False,)],
             10, "the slot is released")


def test_agent_script_answers_other_notifications_without_python(tmp_path: Path) -> None:
    from pgbaton.ocf.install import install_agent
    agent = install_agent("pgsql", ocf_root=tmp_path, python="/nonexistent/python")
    for operation, rc in (("demote", 0), ("start", 0), ("stop", 0), ("promote", 127)):
        env = {"PATH": "/usr/bin:/bin", "OCF_RESKEY_CRM_meta_notify_type": "pre",
               "OCF_RESKEY_CRM_meta_notify_operation": operation}
        proc = subprocess.run([str(agent), "notify"], env=env, capture_output=True, timeout=10, check=False)
        assert proc.returncode == rc, (operation, proc.stderr)
