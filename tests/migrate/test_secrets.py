"""No password in argv, logs or --json, and no pgbaton role with a password, through a whole
migration (start, status, switchover, switchback, finish) with passwords configured."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from typer.testing import Result

from pgbaton.config import parse_config
from pgbaton.migrate.status import wait_synced
from tests.migrate.conftest import Migration
from tests.migrate.test_finish import _leftovers, _privileges
from tests.migrate.test_switchover import SCHEMA

SECRET = "pw-9f3c-do-not-show"  # the sandbox trusts every local connection: any password works


@pytest.fixture
def migration(migration: Migration, monkeypatch: pytest.MonkeyPatch) -> Iterator[Migration]:
    monkeypatch.setenv("PGBATON_TEST_PW", SECRET)
    raw = migration.config.model_dump(mode="json", exclude_none=True)
    for side in ("source", "target"):
        raw["migrations"][migration.name][side]["password_env"] = "PGBATON_TEST_PW"
    migration.config = parse_config(raw)
    for db in migration.databases:
        with psycopg.connect(migration.source.dsn(db), autocommit=True) as c:
            c.execute(SCHEMA)
    yield migration


def test_no_password_in_argv_logs_or_json(migration: Migration, run_cli: Callable[..., Result],
                                          monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    m = migration
    argv: list[str] = []
    real_run = subprocess.run

    def recording_run(args: Any, *a: Any, **k: Any) -> Any:  # the real programs run; only their argv is kept
        argv.extend(str(x) for x in args)
        return real_run(args, *a, **k)

    monkeypatch.setattr(subprocess, "run", recording_run)  # pgbaton.migrate.schema calls subprocess.run
    caplog.set_level(logging.DEBUG)
    outputs = [run_cli("start", m.name, "--json")]
    wait_synced(m.config, m.name, timeout=60)
    outputs.append(run_cli("status", m.name, "--json"))
    outputs.append(run_cli("switchover", m.name, "--json"))
    # the stream back runs as the configured user, which alone is read-write in the frozen
    # databases; pgbaton made no role on either side
    for server in (m.source, m.target):
        with psycopg.connect(server.dsn()) as c:
            assert c.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'pgbaton%'").fetchall() == []
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db)) as c:
            owners = c.execute("SELECT s.subowner::regrole::text FROM pg_subscription s JOIN pg_database d "
                               "ON d.oid = s.subdbid AND d.datname = current_database()").fetchall()
            assert owners == [("postgres",)], owners
    assert sorted(_privileges(m)) == sorted(f"{m.source.port}:role setting:{db}" for db in m.databases)
    wait_synced(m.config, m.name, timeout=60)
    outputs.append(run_cli("switchback", m.name, "--json"))
    outputs.append(run_cli("finish", m.name, "--yes", "--json"))
    for res in outputs:
        assert res.exit_code == 0, res.output
        json.loads(res.output)
        assert SECRET not in res.output
    assert any("pg_dump" in a for a in argv) and SECRET not in " ".join(argv)
    assert SECRET not in caplog.text
    assert _leftovers(m) == []
