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
    with psycopg.connect(m.source.dsn()) as c:  # the stream back runs as pgbaton_apply: no password
        assert c.execute("SELECT rolcanlogin, rolpassword IS NULL FROM pg_authid "
                         "WHERE rolname = 'pgbaton_apply'").fetchone() == (True, True)
    assert [p for p in _privileges(m) if f"{m.target.port}:" in p] == []  # nothing on the target
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
