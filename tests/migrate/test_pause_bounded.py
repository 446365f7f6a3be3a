"""One long transaction must not stall every database: all databases are paused at once under one
deadline (switch.pause_timeout_seconds).  Through a real PgBouncer, with clients on the other
databases measuring every transaction; `switchover --json` reports each outcome."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest
from typer.testing import Result

from pgbaton.config import parse_config
from pgbaton.migrate import execute
from pgbaton.migrate.status import wait_synced
from tests.migrate.conftest import Migration
from tests.migrate.test_switchover import PGBOUNCER, BouncedMigration, Load, _assert_back_on_source, bounced

pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed")
TIMEOUT = 2.0


@pytest.fixture
def migration(migration: Migration) -> Iterator[BouncedMigration]:
    """The bounced migration with a 2 s pause timeout (the CLI fixture writes this configuration)."""
    for m in bounced(migration):
        raw = m.config.model_dump(mode="json", exclude_none=True)
        raw["migrations"][m.name]["switch"]["pause_timeout_seconds"] = TIMEOUT
        m.config = parse_config(raw)
        yield m


def _start(m: BouncedMigration) -> None:
    execute.start(m.config, m.name)
    wait_synced(m.config, m.name, timeout=60)


def test_a_long_transaction_rolls_back_within_the_pause_timeout(
        migration: BouncedMigration, run_cli: Callable[..., Result]) -> None:
    m = migration
    assert m.bouncer is not None
    with Load([m.bouncer.dsn(db) for db in m.databases[1:]]) as load:
        _start(m)
        with psycopg.connect(m.bouncer.dsn(m.databases[0])) as long_tx:
            long_tx.execute("INSERT INTO orders (amount, note) VALUES (1, 'long')")
            load.longest = 0.0
            began = time.monotonic()
            res = run_cli("switchover", m.name, "--json")
            took = time.monotonic() - began
            assert res.exit_code == 1, res.output
            out = json.loads(res.output)
            assert not out["switched"] and out["rolled_back"] == ["resume_clients"], out
            assert out["error"].endswith(f"PAUSE did not complete within 2 s (switch.pause_timeout_seconds): a "
                                         f"transaction in flight did not end, in {m.databases[0]}; rolled back: "
                                         "resume_clients"), out
            long_tx.commit()  # never harmed
        time.sleep(0.3)
        _assert_back_on_source(m, load)
    print(f"\nrolled back after {took:.2f} s; longest client transaction on the other databases "
          f"{load.longest:.3f} s")
    assert load.failures == []
    assert load.longest < TIMEOUT + 0.5, load.longest  # the other databases waited no longer


def test_cancel_at_deadline_ends_the_long_transaction_and_switches(
        migration: BouncedMigration, run_cli: Callable[..., Result]) -> None:
    m = migration
    assert m.bouncer is not None
    with Load([m.bouncer.dsn(db) for db in m.databases[1:]]) as load:
        _start(m)
        long_tx = psycopg.connect(m.bouncer.dsn(m.databases[0]))
        long_tx.execute("INSERT INTO orders (amount, note) VALUES (1, 'long')")
        load.longest = 0.0
        res = run_cli("switchover", m.name, "--cancel-at-deadline", "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        assert out["switched"] and out["error"] is None, out
        with pytest.raises(psycopg.Error):
            long_tx.commit()  # ended at the deadline: it fails, and its row is nowhere
        long_tx.close()
        time.sleep(0.5)
    print(f"\nswitched with the long transaction ended; clients paused {out['paused_seconds']:.3f} s, longest "
          f"client transaction {load.longest:.3f} s (steps {out['step_seconds']})")
    assert load.failures == []
    assert f"port={m.target.port}" in m.bouncer.ini.read_text()
    assert load.longest < TIMEOUT + 1.5, load.longest
    for server in (m.source, m.target):
        with psycopg.connect(server.dsn(m.databases[0])) as c:
            assert c.execute("SELECT count(*) FROM orders WHERE note = 'long'").fetchone() == (0,)
