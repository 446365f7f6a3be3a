"""Helpers for replica tests: config for the fixture servers, SQL on MariaDB, a replica thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import pymysql
from psycopg.conninfo import conninfo_to_dict

from pgbaton.config import Config, parse_config
from pgbaton.replica.run import Replica
from pgbaton.replica.status import status
from pgbaton.sandbox.servers import MariaDBServer

_server_ids = iter(range(5000, 6000))


def make_config(pg_dsn: str, mariadb: MariaDBServer, my_db: str, schema: str = "app", source: str = "src",
                **source_opts: Any) -> Config:
    pg = conninfo_to_dict(pg_dsn)
    return parse_config({
        "target": {"host": "127.0.0.1", "port": int(str(pg["port"])), "dbname": pg["dbname"], "user": "postgres"},
        "sources": {source: {"type": "mariadb", "host": "127.0.0.1", "port": mariadb.port, "user": "root",
                             "databases": {my_db: schema}, "server_id": next(_server_ids), **source_opts}},
    })


def my_exec(mariadb: MariaDBServer, db: str, statements: Iterable[str | tuple[str, Any]]) -> None:
    """Run statements on MariaDB in one transaction."""
    conn = pymysql.connect(**mariadb.connect_args(db), autocommit=False)  # type: ignore[arg-type]
    try:
        with conn.cursor() as cur:
            for st in statements:
                if isinstance(st, tuple):
                    cur.execute(st[0], st[1])
                else:
                    cur.execute(st)
        conn.commit()
    finally:
        conn.close()


class ReplicaThread:
    """`replica start` in a thread of the test process."""

    def __init__(self, cfg: Config, source: str = "src") -> None:
        self.replica = Replica(cfg, source)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.replica.run()
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> ReplicaThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.replica.request_stop()
        self.thread.join(timeout=60)
        assert not self.thread.is_alive(), "replica did not stop"


def wait_until(pred: Callable[[], bool], timeout: float = 60, what: str = "condition") -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if pred():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def caught_up(cfg: Config, source: str = "src") -> bool:
    st = status(cfg, source)[0]
    return bool(st["read_lag_s"] == 0 and st["pending_events"] == 0 and st["pending_batches"] == 0)
