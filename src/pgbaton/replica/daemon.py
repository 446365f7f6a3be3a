"""Run a replica in the foreground or as a daemon, and stop it."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import psycopg
import pymysql

from pgbaton.config import Config
from pgbaton.errors import PgbatonError, SourceUnavailable, TargetUnavailable, is_transient
from pgbaton.replica import catalog as cat
from pgbaton.replica.run import Replica

log = logging.getLogger(__name__)


def default_pid_file(source: str) -> Path:
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp")
    return base / f"pgbaton-{source}.pid"


class Supervisor:
    """Keeps a replica running: when the source or the target goes away (restart,
    network, killed dump thread) or a transient PostgreSQL error ends it, it starts the
    replica again from its stored position after a pause that doubles up to
    ``max_backoff``.  Errors that a retry cannot fix (replay errors with
    on_replay_error: stop, configuration) end it."""

    def __init__(self, cfg: Config, source: str, max_backoff: float = 30.0) -> None:
        self.cfg = cfg
        self.source = source
        self.max_backoff = max_backoff
        self.stopping = threading.Event()
        self.current: Replica | None = None
        self.restarts = 0
        self.unrecorded = 0

    def request_stop(self) -> None:
        self.stopping.set()
        if self.current is not None:
            self.current.request_stop()

    def run(self) -> None:
        backoff = 1.0
        while not self.stopping.is_set():
            self.current = Replica(self.cfg, self.source)
            self.current.restarts_to_record = self.unrecorded
            if self.stopping.is_set():
                return
            started = time.monotonic()
            try:
                self.current.run()
                return
            except (SourceUnavailable, TargetUnavailable, psycopg.Error, pymysql.err.MySQLError) as exc:
                if self.current.restarts_to_record == 0:
                    self.unrecorded = 0
                if isinstance(exc, psycopg.Error) and not is_transient(exc):
                    raise
                if isinstance(exc, pymysql.err.MySQLError) and not _mysql_transient(exc):
                    raise
                if self.stopping.is_set():
                    return
                if time.monotonic() - started > 60:
                    backoff = 1.0
                log.error("source %s: %s; starting again in %.0f s", self.source,
                          str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, backoff)
                self.restarts += 1
                self.unrecorded += 1     # the next replica that starts writes it to the catalog
                self.stopping.wait(backoff)
                backoff = min(backoff * 2, self.max_backoff)


# MySQL errors a later attempt can get past: client-side connection errors (2000-2999),
# server shutdown, a killed connection or query, lock wait timeout, deadlock
_MYSQL_TRANSIENT = {1040, 1053, 1205, 1213, 1317, 1927, 4031}


def _mysql_transient(exc: pymysql.err.MySQLError) -> bool:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    return code is None or 2000 <= code < 3000 or code in _MYSQL_TRANSIENT


def run_foreground(cfg: Config, source: str, pid_file: Path | None = None) -> None:
    """Run until SIGTERM/SIGINT or an error; the pid file (if any) lives as long as the process."""
    supervisor = Supervisor(cfg, source)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %s received: stopping source %s", signal.Signals(signum).name, source)
        supervisor.request_stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if pid_file is not None:
        pid_file.write_text(f"{os.getpid()}\n")
    try:
        supervisor.run()
    finally:
        if pid_file is not None:
            try:
                if pid_file.read_text().strip() == str(os.getpid()):
                    pid_file.unlink()
            except FileNotFoundError:
                pass


def daemonize(log_file: Path) -> bool:
    """Detach from the terminal. Returns True in the daemon, False in the parent."""
    r, w = os.pipe()
    pid = os.fork()
    if pid > 0:
        os.close(w)
        # wait until the daemon has detached (or failed early)
        os.read(r, 1)
        os.close(r)
        return False
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    fd = os.open(str(log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    os.close(null)
    os.write(w, b"x")
    os.close(w)
    return True


def _is_pgbaton(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return b"pgbaton" in cmdline


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop(cfg: Config, source: str, pid_file: Path | None = None, timeout: float = 60.0) -> str:
    """Ask a running replica to stop (SIGTERM) and wait for it. Returns what was done."""
    pid: int | None = None
    path = pid_file or default_pid_file(source)
    if path.exists():
        try:
            pid = int(path.read_text().split()[0])
        except (ValueError, IndexError):
            pid = None
    if pid is None or not _alive(pid):
        conn = cat.catalog_connection(cfg, purpose="pgbaton-stop")
        try:
            row = conn.execute("SELECT reader_pid, reader_host FROM sources WHERE name = %s", (source,)).fetchone()
            holder = cat.lock_holder(conn, source)
        finally:
            conn.close()
        import socket

        if row and row[0] and row[1] == socket.gethostname() and holder is not None:
            pid = int(row[0])
        elif holder is not None:
            raise PgbatonError(f"source {source} is running on host {row[1] if row else '?'}: stop it there")
        else:
            return f"source {source} is not running"
    if pid is None:
        return f"source {source} is not running"
    return _terminate(pid, f"source {source}", timeout)


def start_daemon(cfg: Config, source: str, pid_file: Path | None, log_file: Path | None,
                 configure_logging: Callable[[Path], None]) -> int | None:
    detach(pid_file or default_pid_file(source), log_file, configure_logging,
           lambda pid_path: run_foreground(cfg, source, pid_path), f"source {source}")
    return None


def detach(pid_path: Path, log_file: Path | None, configure_logging: Callable[[Path], None],
           body: Callable[[Path], None], what: str) -> None:
    """Run ``body(pid_path)`` in a daemon; returns in the parent once the pid file exists.

    Refused when the pid file names a live pgbaton process.  ``body`` writes and removes the
    pid file; the log goes to ``log_file`` (default: next to the pid file).
    """
    if pid_path.exists():
        try:
            old = int(pid_path.read_text().split()[0])
        except (ValueError, IndexError):
            old = 0
        if old and _alive(old) and _is_pgbaton(old):
            raise PgbatonError(f"{what} is already running (pid {old}, pid file {pid_path})")
    logf = log_file or pid_path.with_suffix(".log")
    if not daemonize(logf):
        # parent: give the daemon a moment to write its pid file
        for _ in range(50):
            if pid_path.exists():
                break
            time.sleep(0.05)
        return
    configure_logging(logf)
    try:
        body(pid_path)
    except BaseException:
        log.exception("%s failed", what)
        os._exit(1)
    os._exit(0)


def stop_pid(pid_path: Path, what: str, timeout: float) -> str:
    """SIGTERM the pgbaton process of a pid file and wait until it is gone."""
    try:
        pid = int(pid_path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return f"{what} is not running (no pid file {pid_path})"
    return _terminate(pid, what, timeout)


def _terminate(pid: int, what: str, timeout: float) -> str:
    """SIGTERM ``pid`` when it is a live pgbaton process and wait until it is gone."""
    if not _alive(pid) or not _is_pgbaton(pid):
        return f"{what} is not running"
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return f"{what} stopped (pid {pid})"
        time.sleep(0.1)
    raise PgbatonError(f"{what}: pid {pid} did not stop within {timeout:.0f} s")


