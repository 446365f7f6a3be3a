"""The cluster tests' writer against a real PostgreSQL: every id is tried once, outcomes recorded."""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgbaton.sandbox.ha_pacemaker import writer_command, writer_env
from pgbaton.sandbox.ha_writer import parse
from pgbaton.sandbox.servers import PostgresServer
from tests.ha.conftest import PG_BIN, wait_for


@pytest.fixture
def server() -> Iterator[PostgresServer]:
    root = Path(tempfile.mkdtemp(prefix="pgbaton-writer-"))
    root.chmod(0o1777)
    pg = PostgresServer(root / "pg", bin_dir=PG_BIN)
    pg.start()
    try:
        yield pg
    finally:
        pg.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def test_writer_moves_on_after_a_failed_or_unknown_commit(server: PostgresServer, tmp_path: Path) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE writes (id bigint PRIMARY KEY)")
        # as if id 1 had committed before the connection broke: retrying it can never succeed
        conn.execute("INSERT INTO writes VALUES (1)")
    out = tmp_path / "writer.out"
    writer = subprocess.Popen([*writer_command(), server.dsn() + " connect_timeout=2"],
                              stdout=open(out, "w"), stderr=subprocess.STDOUT, env=writer_env())
    try:
        wait_for(lambda: out.read_text().count("ok ") >= 20, 20, "writes acknowledged after the duplicate")
        # break the writer's connection a few times while it writes
        for _ in range(3):
            with psycopg.connect(server.dsn(), autocommit=True) as conn:
                conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE application_name = '' AND pid <> pg_backend_pid()"
                             " AND backend_type = 'client backend'")
            time.sleep(0.3)
        seen = out.read_text().count("ok ")
        wait_for(lambda: out.read_text().count("ok ") > seen + 10, 20, "writes continue after broken connections")
    finally:
        writer.send_signal(signal.SIGTERM)
        writer.wait(timeout=20)
    text = out.read_text()
    assert "fail 1 " in text and text.count("duplicate key") == 1
    acked, unknown = parse(text)
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        present = {int(r[0]) for r in conn.execute("SELECT id FROM writes").fetchall()}
    assert acked <= present
    assert 1 not in acked and (present - acked - {1}) <= unknown
