"""`switch: {method: script}`: a user's program moves the traffic; a failing call rolls back."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest

from pgbaton.config import parse_config
from pgbaton.errors import ConfigError, PgbatonError
from pgbaton.migrate import execute
from pgbaton.migrate.finish import finish
from pgbaton.migrate.status import wait_synced
from pgbaton.migrate.switch_exec import switchover
from tests.migrate.conftest import Migration

SCRIPT = """#!/bin/sh
# records every call; fails the call (its 3rd argument) named in the file {fail}, once
echo "$*" >> "{log}"
if [ -f "{fail}" ] && [ "$3" = "$(cat "{fail}")" ]; then rm -f "{fail}"; echo "no route to the VIP" >&2; exit 3; fi
exit 0
"""


def test_script_switcher_is_called_in_order_and_a_failure_rolls_back(migration: Migration, tmp_path: Path) -> None:
    m = migration
    log, fail = tmp_path / "calls.log", tmp_path / "fail_on"
    script = tmp_path / "switch.sh"
    script.write_text(SCRIPT.format(log=log, fail=fail))
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    raw = m.config.model_dump(mode="json", exclude_none=True)
    raw["migrations"][m.name]["switch"] = {"method": "script", "command": [str(script), "--cluster", "shop"]}
    config = parse_config(raw)
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db), autocommit=True) as c:
            c.execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 10)")
    execute.start(config, m.name)
    wait_synced(config, m.name, timeout=60)
    dbs = " ".join(m.databases)

    fail.write_text("point")
    with pytest.raises(PgbatonError, match="switch script `point` failed with exit code 3: no route to the VIP"):
        switchover(config, m.name)
    # pointed back at the source (the call may have half happened) and resumed
    assert log.read_text().splitlines() == [
        f"--cluster shop pause {dbs}", f"--cluster shop point 127.0.0.1 {m.target.port} {dbs}",
        f"--cluster shop point 127.0.0.1 {m.source.port} {dbs}", f"--cluster shop resume {dbs}"]
    with psycopg.connect(m.source.dsn(m.databases[0]), autocommit=True) as s:
        s.execute("INSERT INTO t VALUES (11)")  # the source is writable again

    log.unlink()
    res = switchover(config, m.name)
    assert res.switched
    assert log.read_text().splitlines() == [
        f"--cluster shop pause {dbs}", f"--cluster shop point 127.0.0.1 {m.target.port} {dbs}",
        f"--cluster shop resume {dbs}"]
    finish(config, m.name)


def test_script_method_needs_a_command() -> None:
    with pytest.raises(ConfigError, match="switch.command"):
        parse_config({"target": {}, "migrations": {"m": {"source": {}, "target": {}, "databases": ["a"],
                                                         "switch": {"method": "script"}}}})
