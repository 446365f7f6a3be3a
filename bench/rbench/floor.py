"""The raw floor: ``mariadb -B | psql \\copy`` with two streams, then the indexes.

What no replication tool can beat on this machine: the MariaDB client dumps
each table as tab-separated text, psql loads it with COPY into a table made
beforehand without indexes; two such streams run at once, two tables each.
Then the primary keys and the ``k`` indexes are built, two sessions at once.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from dataclasses import dataclass

from .env import PSQL, SOURCE_DB, BenchEnv, BenchError
from .verify import compare

log = logging.getLogger(__name__)

DBNAME = "bench_floor"
SCHEMA = "sbtest"
STREAMS = 2

_TABLE_DDL = ("CREATE TABLE {schema}.{table} (id integer NOT NULL, k integer NOT NULL DEFAULT 0,"
              " c character(120) NOT NULL DEFAULT '', pad character(60) NOT NULL DEFAULT '')")


@dataclass
class FloorResult:
    copy_s: float
    index_s: float
    rows: int
    verified: str

    @property
    def total_s(self) -> float:
        return self.copy_s + self.index_s

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.total_s


def _psql(env: BenchEnv, *args: str) -> list[str]:
    return [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(env.pg.port), "-U", "postgres",
            "-d", DBNAME, *args]


def _copy_pipeline(env: BenchEnv, table: str) -> str:
    # -B -N: tab separated, no header; --quick: stream rows instead of buffering the result.
    # Batch mode escapes tab, newline and backslash the way COPY's text format reads them;
    # sysbench rows hold no NULLs.
    dump = ["mariadb", "--no-defaults", "-h", "127.0.0.1", "-P", str(env.mariadb.port), "-u", "root",
            "-B", "-N", "--quick", "-e", f"SELECT id, k, c, pad FROM `{SOURCE_DB}`.`{table}`"]
    load = _psql(env, "-c", f"\\copy {SCHEMA}.{table} (id, k, c, pad) from stdin")
    return f"{shlex.join(dump)} | {shlex.join(load)}"


def _parallel(commands: list[str], timeout: float) -> None:
    procs = [subprocess.Popen(["bash", "-c", "set -euo pipefail; " + cmd], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for cmd in commands]
    try:
        for proc in procs:
            _, err = proc.communicate(timeout=timeout)
            if proc.returncode != 0:
                raise BenchError(f"floor stream failed ({proc.returncode}): {err.strip()[-1000:]}")
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def run_floor(env: BenchEnv) -> FloorResult:
    env.recreate_target_db(DBNAME)
    with env.pg_conn(DBNAME) as conn:
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        for table in env.table_names:
            conn.execute(_TABLE_DDL.format(schema=SCHEMA, table=table))  # type: ignore[arg-type]

    streams: list[list[str]] = [[] for _ in range(STREAMS)]
    for i, table in enumerate(env.table_names):
        streams[i % STREAMS].append(_copy_pipeline(env, table))
    log.info("floor: copying %s rows in %s streams", env.total_rows, STREAMS)
    t0 = time.monotonic()
    _parallel([" && ".join(cmds) for cmds in streams if cmds], timeout=1800)
    copy_s = time.monotonic() - t0

    index_streams: list[list[str]] = [[] for _ in range(STREAMS)]
    for i, table in enumerate(env.table_names):
        index_streams[i % STREAMS].append(
            f"ALTER TABLE {SCHEMA}.{table} ADD PRIMARY KEY (id); CREATE INDEX k_{table} ON {SCHEMA}.{table} (k);")
    log.info("floor: building indexes in %s sessions", STREAMS)
    t0 = time.monotonic()
    _parallel([shlex.join(_psql(env, "-c", "".join(stmts))) for stmts in index_streams if stmts], timeout=1800)
    index_s = time.monotonic() - t0

    check = compare(env, DBNAME, SCHEMA)
    if not check.equal:
        raise BenchError(f"floor copy differs from the source: {check.describe()}")
    return FloorResult(copy_s=copy_s, index_s=index_s, rows=env.total_rows, verified=check.describe())
