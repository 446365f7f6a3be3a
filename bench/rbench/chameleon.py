"""pg_chameleon 2.0.21 as a black-box peer.

It is installed from PyPI into its own virtualenv below the bench folder and
driven only through its ``chameleon`` command.  It refuses to run as root, so
its commands run as the ``postgres`` system user (``setpriv``, which execs, so
the PID we hold is chameleon's own).  HOME points into the bench folder: its
configuration, logs, pid files and copy files stay there.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
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

VERSION = "2.0.21"
# What pip resolved on Python 3.11 (Debian 12) and works with MariaDB 10.11; see bench/README.md.
PINS: list[str] = []
RUN_AS = "postgres"
SYSTEM_PYTHON = "/usr/bin/python3"
_DAEMONIZE_EXIT = re.compile(r"Exception ignored in atexit callback: <bound method Daemonize\.exit.*?SystemExit: 0\n?",
                             re.S)
CONFIG = "bench"
SOURCE = "mysql"
DBNAME = "bench_chameleon"
SCHEMA = "sbtest"


def _as_service_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["setpriv", f"--reuid={RUN_AS}", f"--regid={RUN_AS}", "--init-groups", *argv]
    return argv


def _base_python() -> str:
    # The venv's interpreter must be readable by RUN_AS: a pyenv Python under /root is not.
    return SYSTEM_PYTHON if Path(SYSTEM_PYTHON).exists() else "python3"


def ensure_venv(venv: Path) -> Path:
    """The chameleon executable, installing pg_chameleon into ``venv`` first when needed."""
    exe = venv / "bin" / "chameleon"
    stamp = venv / f".pg_chameleon-{VERSION}"
    if exe.exists() and stamp.exists():
        return exe
    if venv.exists():
        shutil.rmtree(venv)
    python = _base_python()
    log.info("installing pg_chameleon %s into %s (base interpreter %s)", VERSION, venv, python)
    run([python, "-m", "venv", str(venv)], timeout=300, what=f"{python} -m venv")
    run([str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check",
         f"pg_chameleon=={VERSION}", *PINS], timeout=900, what="pip install pg_chameleon")
    version = run(_as_service_user([str(exe), "--version"]), timeout=60, env={"HOME": "/tmp"},
                  what=f"chameleon --version as {RUN_AS}")
    log.info("pg_chameleon installed: %s", (version.stdout + version.stderr).strip())
    stamp.touch()
    return exe


class Chameleon:
    name = "pg_chameleon"
    dbname = DBNAME
    schema = SCHEMA

    def __init__(self, env: BenchEnv, venv: Path) -> None:
        self.env = env
        self.exe = ensure_venv(venv)
        self.home = env.base / "chameleon-home"
        self.replica: subprocess.Popen[bytes] | None = None
        self._replica_log: TextIO | None = None

    # ---- set-up ----------------------------------------------------------
    def _config(self) -> dict[str, Any]:
        cham = self.home / ".pg_chameleon"
        return {
            "pid_dir": str(cham / "pid"),
            "log_dir": str(cham / "logs"),
            "log_dest": "stdout",  # keeps every command in the foreground: we hold its PID
            "log_level": "info",
            "log_days_keep": 10,
            "rollbar_key": "",
            "rollbar_env": "",
            "type_override": {"tinyint(1)": {"override_to": "boolean", "override_tables": ["*"]}},
            # A password must be set although trust auth ignores it: chameleon builds
            # "... password=%(password)s port=%(port)s", and an empty one swallows the port.
            "pg_conn": {"host": "127.0.0.1", "port": str(self.env.pg.port), "user": "postgres", "password": "unused",
                        "database": DBNAME, "charset": "utf8"},
            "sources": {
                SOURCE: {
                    "db_conn": {"host": "127.0.0.1", "port": str(self.env.mariadb.port), "user": "root",
                                "password": "", "charset": "utf8", "connect_timeout": 10},
                    "schema_mappings": {SOURCE_DB: SCHEMA},
                    "limit_tables": None,
                    "skip_tables": None,
                    "grant_select_to": None,
                    "lock_timeout": "120s",
                    "my_server_id": 100,
                    "replica_batch_size": 10000,
                    "replay_max_rows": 10000,
                    "batch_retention": "1 day",
                    "copy_max_memory": "300M",
                    "copy_mode": "file",
                    "out_dir": str(self.home / "copy"),
                    "sleep_loop": 1,
                    "on_error_replay": "continue",
                    "on_error_read": "continue",
                    "auto_maintenance": "disabled",
                    "gtid_enable": False,
                    "type": "mysql",
                    "skip_events": {"insert": None, "delete": None, "update": None},
                    "keep_existing_schema": False,
                    "net_read_timeout": 600,
                },
            },
        }

    def prepare(self) -> None:
        """Fresh home and config, target database, catalog schema and source."""
        if self.home.exists():
            shutil.rmtree(self.home)
        cham = self.home / ".pg_chameleon"
        for sub in ("configuration", "logs", "pid"):
            (cham / sub).mkdir(parents=True)
        (self.home / "copy").mkdir()
        (cham / "configuration" / f"{CONFIG}.yml").write_text(yaml.safe_dump(self._config(), sort_keys=False))
        user = pwd.getpwnam(RUN_AS)
        for path in [self.home, *self.home.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)
        self.env.recreate_target_db(DBNAME)
        self._cmd("create_replica_schema", timeout=120)
        self._cmd("add_source", timeout=120)

    def _argv(self, command: str) -> list[str]:
        argv = [str(self.exe), command, "--config", CONFIG]
        if command != "create_replica_schema":  # that one fails when given a source
            argv += ["--source", SOURCE]
        return _as_service_user(argv)

    def _environ(self) -> dict[str, str]:
        # PGHOST/PGPORT: should any connection string lose its port, libpq still lands on our server
        return {"HOME": str(self.home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1", "PGHOST": "127.0.0.1", "PGPORT": str(self.env.pg.port)}

    def _cmd(self, command: str, timeout: float) -> str:
        proc = run(self._argv(command), timeout=timeout, env=self._environ(), cwd=self.home,
                   what=f"chameleon {command}")
        (self.home / f"{command}.out").write_text(proc.stdout + proc.stderr)
        # chameleon often exits with 0 after an error: read what it printed
        text = _DAEMONIZE_EXIT.sub("", proc.stdout + proc.stderr)  # daemonize's harmless exit noise
        if "Traceback" in text or any(line.startswith(("ERROR", "FATAL")) or " ERROR: " in line
                                      for line in text.splitlines()):
            raise BenchError(f"chameleon {command} reported an error; see {self.home / (command + '.out')}")
        return proc.stdout

    # ---- measured steps --------------------------------------------------
    def init_replica(self) -> float:
        t0 = time.monotonic()
        self._cmd("init_replica", timeout=1800)
        return time.monotonic() - t0

    def start_cdc(self) -> None:
        if self.replica is not None and self.replica.poll() is None:
            return
        self._replica_log = open(self.home / "replica.log", "a", encoding="utf-8")  # noqa: SIM115
        self.replica = subprocess.Popen(self._argv("start_replica"), env=self._environ(), cwd=self.home,
                                        stdin=subprocess.DEVNULL, stdout=self._replica_log,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        log.info("pg_chameleon replica started (pid %s)", self.replica.pid)

    def stop_cdc(self) -> None:
        if self.replica is None:
            return
        # SIGINT is chameleon's own stop request: it ends its read and replay processes
        stop_process(self.replica, first=signal.SIGINT, timeout=30)
        try:  # its worker processes are in the session it leads
            os.killpg(self.replica.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.replica = None
        if self._replica_log is not None:
            self._replica_log.close()
            self._replica_log = None

    def status(self) -> dict[str, Any] | None:
        try:
            with self.env.pg_conn(DBNAME) as conn:
                row = conn.execute(
                    "SELECT s.enm_status::text, r.ts_last_received::text, p.ts_last_replayed::text "
                    "FROM sch_chameleon.t_sources s "
                    "LEFT JOIN sch_chameleon.t_last_received r USING (i_id_source) "
                    "LEFT JOIN sch_chameleon.t_last_replayed p USING (i_id_source) WHERE s.t_source = %s",
                    (SOURCE,)).fetchone()
        except Exception as exc:  # informative only
            return {"error": str(exc)}
        if row is None:
            return None
        return {"state": row[0], "last_received": row[1], "last_replayed": row[2]}

    def errors(self) -> str:
        """Replay errors chameleon logged in its catalog (it goes on after them)."""
        try:
            with self.env.pg_conn(DBNAME) as conn:
                row = conn.execute("SELECT count(*) FROM sch_chameleon.t_error_log").fetchone()
        except Exception as exc:
            return str(exc)
        return f"{row[0] if row else 0} rows in sch_chameleon.t_error_log"


def print_log_tail(chameleon: Chameleon, lines: int = 30) -> None:
    path = chameleon.home / "replica.log"
    if path.exists():
        tail = path.read_text(errors="replace").splitlines()[-lines:]
        print("\n".join(tail), file=sys.stderr)
