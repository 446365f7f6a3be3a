"""Is the target equal to the source?  Checksums of the sysbench tables and the marker table.

The checksum of a table is (row count, sum over its rows of the first 60 bits
of md5(id|k|c|pad)).  MariaDB and PostgreSQL compute the same figure from the
same rows, it does not depend on row order, and one pass over 250,000 rows
takes a fraction of a second on either side.  ``char(n)`` values are compared
without trailing blanks, as MariaDB returns them.

The marker table ``bench_marker`` is created in the source before any replica
is initialised, so every tool copies it and then replicates its changes.  Row 1
carries a sequence number that the CDC measurements advance; other rows are
single inserts for the idle-latency probe.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from .env import SOURCE_DB, BenchEnv

MARKER = "bench_marker"

_MYSQL_SUM = ("SELECT COUNT(*), COALESCE(SUM(CAST(CONV(SUBSTRING(MD5(CONCAT_WS('|', id, k, c, pad)), 1, 15), 16, 10)"
              " AS UNSIGNED)), 0) FROM `{db}`.`{table}`")
_PG_SUM = ("SELECT count(*), coalesce(sum(('x' || substr(md5(concat_ws('|', id::text, k::text, c::text, pad::text)),"
           " 1, 15))::bit(60)::bigint), 0) FROM {table}")

Checksums = dict[str, tuple[int, int]]


def create_marker(env: BenchEnv) -> None:
    with env.mysql() as conn, conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {MARKER} (id INT NOT NULL PRIMARY KEY, seq BIGINT NOT NULL,"
                    " note VARCHAR(32) NOT NULL DEFAULT '') ENGINE=InnoDB")
        cur.execute(f"INSERT INTO {MARKER} (id, seq, note) VALUES (1, 0, 'heartbeat') "
                    "ON DUPLICATE KEY UPDATE seq = 0")


def source_checksums(env: BenchEnv) -> Checksums:
    result: Checksums = {}
    with env.mysql() as conn, conn.cursor() as cur:
        for table in env.table_names:
            cur.execute(_MYSQL_SUM.format(db=SOURCE_DB, table=table))
            count, total = cur.fetchone()  # type: ignore[misc]
            result[table] = (int(count), int(total))
    return result


def target_checksums(env: BenchEnv, dbname: str, schema: str) -> Checksums:
    result: Checksums = {}
    with env.pg_conn(dbname) as conn:
        for table in env.table_names:
            query = sql.SQL(_PG_SUM).format(table=sql.Identifier(schema, table))
            row = conn.execute(query).fetchone()
            assert row is not None
            result[table] = (int(row[0]), int(row[1]))
    return result


@dataclass
class Comparison:
    equal: bool
    source: Checksums
    target: Checksums | None
    error: str = ""

    def describe(self) -> str:
        if self.error:
            return self.error
        if self.equal:
            return "equal"
        diffs = [f"{t}: source {self.source[t]} target {(self.target or {}).get(t)}"
                 for t in self.source if (self.target or {}).get(t) != self.source[t]]
        return "; ".join(diffs)


def compare(env: BenchEnv, dbname: str, schema: str) -> Comparison:
    """Checksum source and target at the same time (two threads) and compare."""
    box: dict[str, Any] = {}

    def target_side() -> None:
        try:
            box["target"] = target_checksums(env, dbname, schema)
        except psycopg.Error as exc:
            box["error"] = f"target not readable: {exc}".strip()

    thread = threading.Thread(target=target_side, daemon=True)
    thread.start()
    source = source_checksums(env)
    thread.join(timeout=600)
    target = box.get("target")
    return Comparison(equal=target == source, source=source, target=target, error=box.get("error", ""))


def wait_equal(env: BenchEnv, dbname: str, schema: str, timeout: float,
               pause: float = 0.5) -> tuple[float, Comparison, int]:
    """Compare until source and target are equal.

    Returns (monotonic time the equal check started, its comparison, number of checks made).

    Raises TimeoutError with the last difference if they never become equal.
    """
    deadline = time.monotonic() + timeout
    attempts = 0
    while True:
        started = time.monotonic()
        result = compare(env, dbname, schema)
        attempts += 1
        if result.equal:
            return started, result, attempts
        if time.monotonic() > deadline:
            raise TimeoutError(f"target never matched the source within {timeout:.0f} s: {result.describe()}")
        time.sleep(pause)
