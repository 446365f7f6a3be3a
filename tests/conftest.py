"""Real servers for the test suite, started once per session on free loopback ports.

Every server lives under a temporary folder and is stopped by its PID at the end.
Tests get their own database on the shared servers, so they do not see each other.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest

from pgbaton.sandbox.servers import MariaDBServer, PostgresServer, pg18_bin


@pytest.fixture(scope="session")
def sandbox_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="pgbaton-test-"))
    root.chmod(0o1777)
    yield root
    if not os.environ.get("PGBATON_KEEP_SANDBOX"):
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg15(sandbox_root: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(sandbox_root / "pg15")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg18(sandbox_root: Path) -> Iterator[PostgresServer]:
    server = PostgresServer(sandbox_root / "pg18", bin_dir=pg18_bin())
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mariadb(sandbox_root: Path) -> Iterator[MariaDBServer]:
    server = MariaDBServer(sandbox_root / "mariadb")
    server.start()
    yield server
    server.stop()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


@pytest.fixture
def pg_db(pg15: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the PostgreSQL 15 server; yields its conninfo."""
    name = _unique("t")
    with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield pg15.dsn(name)
    with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def my_db(mariadb: MariaDBServer) -> Iterator[str]:
    """A fresh database on the MariaDB server; yields its name."""
    name = _unique("s")
    conn = pymysql.connect(**mariadb.connect_args(), autocommit=True)  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    conn.close()
    yield name
    conn = pymysql.connect(**mariadb.connect_args(), autocommit=True)  # type: ignore[arg-type]
    with conn.cursor() as cur:
        # sessions a failed test left open must not block the drop
        cur.execute("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s AND ID <> CONNECTION_ID()", (name,))
        for (pid,) in cur.fetchall():
            cur.execute(f"KILL {int(pid)}")
        cur.execute("SET SESSION lock_wait_timeout = 30")
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    conn.close()
