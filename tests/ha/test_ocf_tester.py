"""resource-agents' ocf-tester against the installed agent and a real PostgreSQL data directory."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pgbaton.ocf.install import install_agent
from tests.ha.conftest import PG_BIN, Pair

pytestmark = pytest.mark.skipif(shutil.which("ocf-tester") is None or shutil.which("xmllint") is None,
                                reason="ocf-tester (resource-agents) and xmllint (libxml2-utils) are needed")


def test_ocf_tester_passes(pair: Pair) -> None:
    # ocf-tester checks the mode as another user: the path must be readable by all
    agent = install_agent("pgsql", ocf_root=pair.root / "ocf", python=sys.executable)
    n1, n2 = pair.nodes["n1"], pair.nodes["n2"]
    params = {
        "pgdata": str(n1.pgdata), "bindir": str(PG_BIN), "pgport": str(n1.port), "socketdir": str(n1.base),
        "node_hosts": f"n1=127.0.0.1:{n1.port} n2=127.0.0.1:{n2.port}",
    }
    args = ["ocf-tester", "-n", "pgsql", *(a for k, v in params.items() for a in ("-o", f"{k}={v}")), str(agent)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OCF_")}
    env.update({"OCF_ROOT": "/usr/lib/ocf", "OCF_RESKEY_CRM_meta_on_node": "n1",
                "PGBATON_ATTR_DIR": str(pair.attr_dir), "PGBATON_OCF_LOG": str(pair.root / "agent.log")})
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "passed all tests" in proc.stdout
    # it really ran PostgreSQL: promoted, demoted, restarted and stopped it
    log = (pair.root / "agent.log").read_text()
    assert "PostgreSQL promoted" in log and "PostgreSQL stopped" in log
    assert n1.postmaster_pid() is None or not Path(f"/proc/{n1.postmaster_pid()}").exists()
