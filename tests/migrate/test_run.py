"""`pgbaton migrate run` as a process of its own: it repairs, follows DDL, and stops on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import yaml

from pgbaton.migrate import execute
from pgbaton.migrate.finish import finish
from pgbaton.migrate.status import wait_synced
from tests.migrate.conftest import Migration


def _running(pid: int) -> bool:
    """Alive and not a zombie (the daemon is reparented to init, which may reap it late)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _until(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_run_repairs_and_adds_new_tables_until_sigterm(migration: Migration, tmp_path: Path) -> None:
    m = migration
    db = m.databases[0]
    with psycopg.connect(m.source.dsn(db), autocommit=True) as c:
        c.execute("CREATE TABLE t (id int PRIMARY KEY)")
    execute.start(m.config, m.name)
    wait_synced(m.config, m.name, timeout=60)
    cfg_file = tmp_path / "pgbaton.yaml"
    cfg_file.write_text(yaml.safe_dump(m.config.model_dump(mode="json", exclude_none=True)))
    cli = [sys.executable, "-m", "pgbaton", "-c", str(cfg_file), "migrate"]

    once = subprocess.run([*cli, "run", m.name, "--once", "--json"], capture_output=True, text=True, timeout=60)
    assert once.returncode == 0, once.stderr
    assert json.loads(once.stdout) == {"migration": m.name, "repaired": []}  # all well: nothing to do

    with psycopg.connect(m.target.dsn(db), autocommit=True) as t:  # someone disables the subscription
        (sub,) = t.execute("SELECT subname FROM pg_subscription WHERE subdbid = "
                           "(SELECT oid FROM pg_database WHERE datname = current_database())").fetchone() or ("",)
        t.execute(f'ALTER SUBSCRIPTION "{sub}" DISABLE')
    proc = subprocess.Popen([*cli, "run", m.name, "--interval", "0.5"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        def enabled() -> bool:
            with psycopg.connect(m.target.dsn(db)) as t:
                return t.execute("SELECT subenabled FROM pg_subscription WHERE subname = %s",
                                 (sub,)).fetchone() == (True,)
        _until(enabled)
        with psycopg.connect(m.source.dsn(db), autocommit=True) as s:
            s.execute("CREATE TABLE fresh (id int PRIMARY KEY, v text)")
            s.execute("INSERT INTO fresh SELECT g, 'v' || g FROM generate_series(1, 500) g")

        def arrived() -> bool:
            with psycopg.connect(m.target.dsn(db)) as t:
                if t.execute("SELECT to_regclass('fresh')").fetchone() == (None,):
                    return False
                return t.execute("SELECT count(*) FROM fresh").fetchone() == (500,)
        _until(arrived)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "added to the subscription" in err and "reattached" not in err

    # as a daemon: a pid file, refused twice, `migrate stop` ends it and removes the pid file
    pid_file = tmp_path / "run.pid"
    daemon = subprocess.run([*cli, "run", m.name, "--daemon", "--pid-file", str(pid_file), "--interval", "0.5"],
                            capture_output=True, text=True, timeout=60)
    assert daemon.returncode == 0, daemon.stderr
    pid = int(pid_file.read_text())
    try:
        assert _running(pid)
        again = subprocess.run([*cli, "run", m.name, "--daemon", "--pid-file", str(pid_file)],
                               capture_output=True, text=True, timeout=60)
        assert again.returncode != 0 and "already running" in again.stderr + again.stdout
        stopped = subprocess.run([*cli, "stop", m.name, "--pid-file", str(pid_file)],
                                 capture_output=True, text=True, timeout=60)
        assert stopped.returncode == 0 and f"stopped (pid {pid})" in stopped.stdout, stopped.stderr
        assert not pid_file.exists() and not _running(pid)
    finally:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)  # only the daemon this test started
    assert (tmp_path / "run.log").exists()
    finish(m.config, m.name)
