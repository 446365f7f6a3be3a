"""pgbaton driven through its command line, exactly as a user would.

    pgbaton -c CFG source add sb
    pgbaton -c CFG replica init --source sb
    pgbaton -c CFG replica start --source sb          (foreground, in a subprocess we hold)
    pgbaton -c CFG replica stop --source sb
    pgbaton -c CFG status --source sb --json
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import yaml

from .env import SOURCE_DB, BenchEnv, BenchError, run, stop_process

log = logging.getLogger(__name__)

SOURCE = "sb"
DBNAME = "bench_pgbaton"
SCHEMA = "sbtest"


def pgbaton_exe() -> Path:
    """The console script next to the interpreter running the bench (.venv/bin/pgbaton)."""
    exe = Path(sys.executable).parent / "pgbaton"
    if not exe.exists():
        found = shutil.which("pgbaton")
        if found is None:
            raise BenchError("the pgbaton command is not installed (run `make venv`)")
        exe = Path(found)
    return exe


def cli_available() -> str | None:
    """None when `pgbaton --help` works, else why not."""
    try:
        exe = pgbaton_exe()
        proc = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60, check=False)
    except (BenchError, OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0:
        return (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1] if (proc.stderr or proc.stdout) \
            else f"exit code {proc.returncode}"
    for verb in ("replica", "source", "status"):
        if verb not in proc.stdout:
            return f"`pgbaton --help` lists no `{verb}` command yet"
    return None


class Pgbaton:
    name = "pgbaton"
    dbname = DBNAME
    schema = SCHEMA

    def __init__(self, env: BenchEnv, copy_workers: int = 2) -> None:
        self.env = env
        self.exe = pgbaton_exe()
        self.dir = env.base / "pgbaton"
        self.config_file = self.dir / "pgbaton.yaml"
        self.copy_workers = copy_workers
        self.replica: subprocess.Popen[bytes] | None = None
        self._replica_log: TextIO | None = None

    def _config(self) -> dict[str, Any]:
        return {
            "target": {"host": "127.0.0.1", "port": self.env.pg.port, "dbname": DBNAME, "user": "postgres",
                       "catalog_schema": "pgbaton"},
            "sources": {
                SOURCE: {
                    "type": "mariadb",
                    "host": "127.0.0.1",
                    "port": self.env.mariadb.port,
                    "user": "root",
                    "databases": {SOURCE_DB: SCHEMA},
                    "copy_workers": self.copy_workers,
                },
            },
        }

    def _argv(self, *args: str) -> list[str]:
        return [str(self.exe), "-c", str(self.config_file), *args]

    def _cmd(self, *args: str, timeout: float) -> str:
        proc = run(self._argv(*args), timeout=timeout, cwd=self.dir, what=f"pgbaton {' '.join(args)}")
        name = "_".join(a for a in args[:2] if not a.startswith("-"))
        (self.dir / f"{name}.out").write_text(proc.stdout + proc.stderr)
        return proc.stdout

    def prepare(self) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self.config_file.write_text(yaml.safe_dump(self._config(), sort_keys=False))
        self.env.recreate_target_db(DBNAME)
        self._cmd("source", "add", SOURCE, timeout=120)

    def init_replica(self) -> float:
        t0 = time.monotonic()
        self._cmd("replica", "init", "--source", SOURCE, timeout=1800)
        return time.monotonic() - t0

    def start_cdc(self) -> None:
        if self.replica is not None and self.replica.poll() is None:
            return
        self._replica_log = open(self.dir / "replica.log", "a", encoding="utf-8")  # noqa: SIM115
        self.replica = subprocess.Popen(self._argv("replica", "start", "--source", SOURCE), cwd=self.dir,
                                        stdin=subprocess.DEVNULL, stdout=self._replica_log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.info("pgbaton replica started (pid %s)", self.replica.pid)

    def stop_cdc(self) -> None:
        if self.replica is None:
            return
        if self.replica.poll() is None:
            try:
                self._cmd("replica", "stop", "--source", SOURCE, timeout=60)
                self.replica.wait(timeout=30)
            except (BenchError, subprocess.TimeoutExpired) as exc:
                log.warning("pgbaton replica stop did not end the process (%s): sending SIGTERM", exc)
        stop_process(self.replica, first=signal.SIGTERM, timeout=30)
        self.replica = None
        if self._replica_log is not None:
            self._replica_log.close()
            self._replica_log = None

    def status(self) -> dict[str, Any] | None:
        try:
            out = self._cmd("status", "--source", SOURCE, "--json", timeout=60)
            data: dict[str, Any] = json.loads(out)
            return data
        except (BenchError, ValueError) as exc:  # informative only
            return {"error": str(exc)}
