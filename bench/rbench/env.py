"""The bench environment: one MariaDB source, one PostgreSQL 15 target, sysbench.

Both servers are private (``pgbaton.sandbox.servers``), live below the bench
folder, listen on free loopback ports and are stopped by PID.
"""

from __future__ import annotations

import logging
import os
import platform
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from pgbaton.sandbox.servers import PG15_BIN, MariaDBServer, PostgresServer, free_port

log = logging.getLogger(__name__)

SOURCE_DB = "sbtest"
PSQL = str(PG15_BIN / "psql")


class BenchError(RuntimeError):
    """A bench step failed; the message says which and why."""


def run(cmd: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: Path | None = None,
        what: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command to its end; raise BenchError with its output when it fails."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False)
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"{what or cmd[0]} did not finish within {timeout:.0f} s") from exc
    if proc.returncode != 0:
        tail = (proc.stderr.strip() or proc.stdout.strip())[-2000:]
        raise BenchError(f"{what or ' '.join(cmd)} failed ({proc.returncode}): {tail}")
    return proc


def stop_process(proc: subprocess.Popen[Any], *, first: int = signal.SIGTERM, timeout: float = 20,
                 group: bool = False) -> None:
    """End a process this bench started: ``first`` signal, then SIGKILL after ``timeout``."""
    if proc.poll() is not None:
        return

    def send(sig: int) -> None:
        try:
            if group:
                os.killpg(proc.pid, sig)  # the process leads its own session (start_new_session)
            else:
                os.kill(proc.pid, sig)
        except ProcessLookupError:
            pass

    send(first)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        log.warning("pid %s did not stop within %.0f s: killing it", proc.pid, timeout)
        send(signal.SIGKILL)
        proc.wait(timeout=10)


@dataclass
class BurstResult:
    """One sysbench oltp_write_only run against the source."""

    started: float  # time.monotonic() when sysbench was started
    ended: float  # time.monotonic() when it exited
    row_changes: int  # rows inserted + updated + deleted in sbtest meanwhile (MariaDB userstat)
    transactions: int
    writes: int  # write statements sysbench reports
    output: str = field(repr=False, default="")

    @property
    def seconds(self) -> float:
        return self.ended - self.started

    @property
    def changes_per_s(self) -> float:
        return self.row_changes / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BenchEnv:
    base: Path
    tables: int = 4
    rows: int = 250_000
    mariadb: MariaDBServer = field(init=False)
    pg: PostgresServer = field(init=False)

    def __post_init__(self) -> None:
        self.base = self.base.resolve()
        self.mariadb = MariaDBServer(self.base / "mariadb", port=free_port())
        self.pg = PostgresServer(self.base / "postgres", port=free_port(),
                                 settings={"max_connections": "200", "maintenance_work_mem": "256MB"})

    @property
    def table_names(self) -> list[str]:
        return [f"sbtest{i}" for i in range(1, self.tables + 1)]

    @property
    def total_rows(self) -> int:
        return self.tables * self.rows

    # ---- servers -------------------------------------------------------
    def start_servers(self) -> None:
        for sub in ("mariadb", "postgres"):
            if (self.base / sub).exists():
                shutil.rmtree(self.base / sub)
        log.info("starting MariaDB on 127.0.0.1:%s and PostgreSQL 15 on 127.0.0.1:%s",
                 self.mariadb.port, self.pg.port)
        self.mariadb.start()
        self.pg.start()

    def stop_servers(self, *, keep_data: bool = False) -> None:
        """Stop both servers by PID; then drop their data folders (logs stay) unless ``keep_data``."""
        for server in (self.mariadb, self.pg):
            try:
                server.stop()
            except Exception as exc:  # keep going: the other server must stop too
                log.error("could not stop %s: %s", type(server).__name__, exc)
                continue
            if not keep_data and not server.is_running():
                shutil.rmtree(server.datadir, ignore_errors=True)

    # ---- connections ---------------------------------------------------
    def mysql(self, database: str | None = SOURCE_DB) -> pymysql.connections.Connection[Any]:
        return pymysql.connect(host="127.0.0.1", port=self.mariadb.port, user="root", password="",
                               database=database, autocommit=True, charset="utf8mb4")

    def pg_conn(self, dbname: str = "postgres") -> psycopg.Connection[Any]:
        return psycopg.connect(self.pg.dsn(dbname), autocommit=True)

    def recreate_target_db(self, dbname: str) -> None:
        with self.pg_conn() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{dbname}"')

    # ---- source data ---------------------------------------------------
    def sysbench(self, test: str, *args: str, timeout: float) -> str:
        cmd = ["sysbench", test, "--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={self.mariadb.port}",
               "--mysql-user=root", f"--mysql-db={SOURCE_DB}", f"--tables={self.tables}",
               f"--table-size={self.rows}", *args]
        return run(cmd, timeout=timeout, what=f"sysbench {test} {args[-1] if args else ''}").stdout

    def prepare_source(self) -> float:
        """Create database sbtest with the sysbench tables; return the seconds it took."""
        with self.mysql(None) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {SOURCE_DB}")
            cur.execute("SET GLOBAL userstat = ON")  # row change counts, see row_changes()
        t0 = time.monotonic()
        self.sysbench("oltp_read_write", f"--threads={min(self.tables, 4)}", "prepare", timeout=1800)
        return time.monotonic() - t0

    def row_changes(self) -> int:
        """Rows inserted, updated and deleted in database sbtest since userstat was switched on.

        MariaDB 10.11 has no Innodb_rows_* counters; its user statistics count the
        changed rows per table (information_schema.TABLE_STATISTICS.ROWS_CHANGED).
        """
        with self.mysql(None) as conn, conn.cursor() as cur:
            cur.execute("SELECT COALESCE(SUM(ROWS_CHANGED), 0) FROM information_schema.TABLE_STATISTICS "
                        "WHERE TABLE_SCHEMA = %s", (SOURCE_DB,))
            row = cur.fetchone()
            return int(row[0]) if row else 0

    def burst(self, seconds: int, tps: int, threads: int = 4) -> BurstResult:
        """sysbench oltp_write_only for ``seconds`` at ``tps`` transactions/s (4 row changes each)."""
        before = self.row_changes()
        started = time.monotonic()
        out = self.sysbench("oltp_write_only", f"--threads={threads}", f"--time={seconds}", f"--rate={tps}",
                            "--report-interval=5", "run", timeout=seconds + 120)
        ended = time.monotonic()
        after = self.row_changes()
        return BurstResult(started, ended, after - before, _sysbench_figure(out, r"transactions:\s+(\d+)"),
                           _sysbench_figure(out, r"write:\s+(\d+)"), out)

    # ---- context -------------------------------------------------------
    def machine(self) -> dict[str, Any]:
        cpu = "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        mem_kb = 0
        try:
            mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        except (OSError, ValueError, IndexError):
            pass

        def version(cmd: list[str]) -> str:
            try:
                return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip().splitlines()[0]
            except (OSError, subprocess.TimeoutExpired, IndexError):
                return "unknown"

        return {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "host": platform.node(),
            "os": platform.platform(),
            "cpu": cpu,
            "cores": os.cpu_count(),
            "memory_gb": round(mem_kb / 1024 / 1024, 1),
            "loadavg_at_start": os.getloadavg()[0],
            "mariadb": version(["mariadbd", "--version"]),
            "postgresql": version([str(PG15_BIN / "postgres"), "--version"]),
            "sysbench": version(["sysbench", "--version"]),
            "python": platform.python_version(),
        }


def _sysbench_figure(output: str, pattern: str) -> int:
    match = re.search(pattern, output)
    return int(match.group(1)) if match else 0
