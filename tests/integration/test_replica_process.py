"""The replica as a real process: CLI, kill -9 during a write burst, daemon, idle lag."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
import pymysql
import pytest
import yaml

from pgbaton.config import Config
from pgbaton.replica.status import status
from pgbaton.replica.verify import verify
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import caught_up, make_config, my_exec, wait_until

PGBATON = [sys.executable, "-m", "pgbaton"]


def _write_config(cfg: Config, path: Path) -> Path:
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return path


def _cli(cfg_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*PGBATON, "-c", str(cfg_path), *args], capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"pgbaton {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


class Burst(threading.Thread):
    """Writes a steady mix of inserts, updates and deletes until stopped."""

    def __init__(self, mariadb: MariaDBServer, db: str) -> None:
        super().__init__(daemon=True)
        self.conn = pymysql.connect(**mariadb.connect_args(db), autocommit=False)  # type: ignore[arg-type]
        self.halt = threading.Event()
        self.commits = 0

    def run(self) -> None:
        rnd = random.Random(7)
        try:
            with self.conn.cursor() as cur:
                while not self.halt.is_set():
                    try:
                        self._one(cur, rnd)
                        self.conn.commit()
                        self.commits += 1
                    except pymysql.err.IntegrityError:
                        self.conn.rollback()   # a moved key collided: that transaction never happened
        finally:
            self.conn.close()

    def _one(self, cur: pymysql.cursors.Cursor, rnd: random.Random) -> None:
        k = rnd.randrange(1, 3000)
        cur.execute("INSERT INTO acct (id, bal, note) VALUES (%s, %s, 'n') "
                    "ON DUPLICATE KEY UPDATE bal = bal + 1", (k, k))
        cur.execute("UPDATE acct SET bal = bal - 1, note = concat(left(note, 20), 'u') WHERE id = %s",
                    (rnd.randrange(1, 3000),))
        if rnd.random() < 0.2:
            cur.execute("DELETE FROM acct WHERE id = %s", (rnd.randrange(1, 3000),))
        if rnd.random() < 0.1:
            cur.execute("UPDATE acct SET id = id + 100000 + %s WHERE id = %s",
                        (rnd.randrange(1, 10**6), rnd.randrange(1, 3000)))


@pytest.fixture
def env(pg_db: str, my_db: str, mariadb: MariaDBServer, tmp_path: Path):  # type: ignore[no-untyped-def]
    my_exec(mariadb, my_db, ["CREATE TABLE acct (id int PRIMARY KEY, bal bigint NOT NULL, note varchar(200))",
                             "INSERT INTO acct SELECT seq, seq * 10, 'init' FROM seq_1_to_2000"])
    cfg = make_config(pg_db, mariadb, my_db, batch_max_rows=200, heartbeat_seconds=0.5)
    path = _write_config(cfg, tmp_path / "pgbaton.yaml")
    _cli(path, "source", "add", "src")
    out = _cli(path, "replica", "init", "--source", "src", "--json", "--no-progress")
    assert json.loads(out.stdout)["rows"] == 2000
    return cfg, path


def _start(path: Path, log: Path) -> subprocess.Popen[bytes]:
    fh = open(log, "ab")
    return subprocess.Popen([*PGBATON, "-c", str(path), "replica", "start", "--source", "src"],
                            stdout=fh, stderr=subprocess.STDOUT)


def test_kill_9_during_burst_loses_and_duplicates_nothing(env, mariadb: MariaDBServer, my_db: str,  # type: ignore[no-untyped-def]
                                                          tmp_path: Path) -> None:
    cfg, path = env
    burst = Burst(mariadb, my_db)
    burst.start()
    log = tmp_path / "replica.log"
    try:
        for delay in (1.5, 0.7, 2.2, 0.3):
            proc = _start(path, log)
            time.sleep(delay)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    finally:
        burst.halt.set()
        burst.join(timeout=30)
    assert burst.commits > 100
    proc = _start(path, log)
    try:
        wait_until(lambda: caught_up(cfg), 120, "replica to catch up after the kills")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, log.read_text()[-3000:]
    results = verify(cfg, "src")
    assert results[0]["equal"], results
    assert results[0]["source_rows"] == results[0]["target_rows"] > 1000


def test_daemon_start_status_stop_and_idle_lag(env, mariadb: MariaDBServer, my_db: str, pg_db: str,  # type: ignore[no-untyped-def]
                                               tmp_path: Path) -> None:
    cfg, path = env
    pid_file = tmp_path / "r.pid"
    _cli(path, "replica", "start", "--source", "src", "--daemon", "--pid-file", str(pid_file))
    try:
        wait_until(lambda: pid_file.exists(), 10, "pid file")
        wait_until(lambda: status(cfg, "src")[0]["running"], 20, "replica running")
        # a single change on an idle source arrives quickly
        my_exec(mariadb, my_db, ["UPDATE acct SET note = 'ping' WHERE id = 1"])
        t0 = time.monotonic()
        with psycopg.connect(pg_db, autocommit=True) as conn:
            wait_until(lambda: conn.execute("SELECT note FROM app.acct WHERE id = 1").fetchone() == ("ping",),
                       10, "idle change to arrive")
        latency = time.monotonic() - t0
        # idle: lag stays near zero over several heartbeats instead of growing
        samples = []
        for _ in range(6):
            time.sleep(0.5)
            st = json.loads(_cli(path, "status", "--source", "src", "--json").stdout)
            samples.append((st["read_lag_s"], st["replay_lag_s"], st["pending_events"]))
        assert all(r is not None and r < 1.0 and p < 1.0 and n == 0 for r, p, n in samples), samples
        st = json.loads(_cli(path, "status", "--source", "src", "--json").stdout)
        assert st["state"] == "running" and st["tables"][0]["state"] == "replicating"
        print(f"idle change latency: {latency * 1000:.0f} ms; idle lag samples {samples}")
    finally:
        out = _cli(path, "replica", "stop", "--source", "src", "--pid-file", str(pid_file))
    assert "stopped" in out.stdout
    assert not pid_file.exists()
    assert status(cfg, "src")[0]["state"] == "stopped"
    # a second stop is harmless
    assert "not running" in _cli(path, "replica", "stop", "--source", "src", "--pid-file", str(pid_file)).stdout


def test_cli_errors_are_clean(tmp_path: Path, env) -> None:  # type: ignore[no-untyped-def]
    cfg, path = env
    bad = tmp_path / "bad.yaml"
    bad.write_text("target: {port: notaport}\nsources: {}\n")
    proc = _cli(bad, "status", check=False)
    assert proc.returncode == 1 and "target.port" in proc.stderr and "Traceback" not in proc.stderr
    proc = _cli(path, "replica", "init", "--source", "nope", check=False)
    assert proc.returncode == 1 and "source 'nope' is not in the configuration" in proc.stderr
    proc = _cli(path, "replica", "init", "--source", "src", check=False)
    assert proc.returncode == 1 and "already initialized" in proc.stderr
    assert caught_up(cfg) or True
