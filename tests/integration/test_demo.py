"""`make demo` works: the sandbox demo tells the whole story end to end (a smaller
replica part), the status page is served, and everything it started is stopped."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pgbaton.sandbox.servers import _pid_alive


def _ha_usable() -> bool:
    import os
    import shutil

    return os.geteuid() == 0 and all(shutil.which(t) for t in ("pacemakerd", "corosync", "ip", "unshare", "psql"))


def test_demo_runs_end_to_end(sandbox_root: Path) -> None:
    base = sandbox_root / "demo"
    cmd = [sys.executable, "-m", "pgbaton.sandbox.demo", "run", "--dir", str(base), "--rows", "2000", "--seconds", "2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=400)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-3000:]
    # the page's address comes first, before any part
    first = out.index("watch it live: http://127.0.0.1:")
    assert first < out.index("part 1")
    assert re.search(r"the status page shows source shop running, [\d,]+ rows replayed, 0 pending, 5 tables", out)
    # part 1: the replica
    assert "the PostgreSQL replica equals the MariaDB source" in out
    assert "DIFFERENT" not in out
    # part 2: the migration, with clients through PgBouncer
    assert re.search(r"switched over to PostgreSQL 18: .* 0 failed transactions", out), out[-4000:]
    assert re.search(r"switched back to PostgreSQL 15: .* 0 failed transactions", out), out[-4000:]
    assert re.search(r"client transactions committed through PgBouncer, 0 failed; longest stall \d+ ms", out)
    assert "both sides equal" in out and out.count("every row equal") == 3, out[-3000:]
    # `migrate start --wait` shows its progress (on stderr) while it waits
    assert re.search(r"migration upgrade: every table synced and caught up after [\d.]+ s", proc.stderr), proc.stderr
    # the whole story in under 3 minutes
    took = re.search(r"demo: done in (\d+) s", out)
    assert took and int(took.group(1)) < 180, out[-2000:]
    over = json.loads((base / "switchover.json").read_text())
    back = json.loads((base / "switchback.json").read_text())
    assert over["switched"] and back["switched"] and over["client_failed"] == back["client_failed"] == 0
    # everything stopped
    state = json.loads((base / "state.json").read_text())
    for key in ("mariadb_pid", "pgbouncer_pid", "serve_pid"):
        assert not _pid_alive(int(state[key])), key
    clean = subprocess.run([sys.executable, "-m", "pgbaton.sandbox.demo", "clean", "--dir", str(base)],
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0 and not base.exists()


def test_demo_ha_needs_nothing_from_tests(tmp_path: Path) -> None:
    # the demo's harness is in the package: importable outside a checkout's tests/
    code = ("import sys, pgbaton.sandbox.demo_ha; "
            "bad = sorted(m for m in sys.modules if m == 'tests' or m.startswith('tests.')); "
            "assert not bad, bad; assert not any(p.rstrip('/').endswith('/tests') for p in sys.path)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.pacemaker
@pytest.mark.slow
@pytest.mark.skipif(not _ha_usable(), reason="needs root, pacemaker, corosync, iproute2 and psql")
def test_demo_ha_fails_over_without_losing_commits(tmp_path: Path) -> None:
    # run from elsewhere than the checkout: the demo must not need tests/ on sys.path
    proc = subprocess.run([sys.executable, "-m", "pgbaton.sandbox.demo_ha"], capture_output=True, text=True,
                          timeout=900, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, out[-4000:] + proc.stderr[-3000:]
    assert re.search(r"failover: [\d.]+ s from kill -9 to the first commit on pgb-node2", out), out
    assert "pgb-node1 is back as a standby of pgb-node2" in out
    assert re.search(r"[\d,]+ commits acknowledged to the client, 0 lost", out), out
    assert 'pgbaton_ha_node_role{node="pgb-node2",role="primary"} 1.0' in out
    assert "cluster stopped and removed" in out
    assert re.search(r"whole demo \d+ s", out), out
