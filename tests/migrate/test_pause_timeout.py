"""A transaction left open through PgBouncer: PAUSE would wait for it forever; the switchover
gives up after switch.pause_timeout_seconds, rolls back, and every client goes on."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import psycopg
import pytest

from pgbaton.config import parse_config
from pgbaton.errors import PgbatonError
from pgbaton.migrate import execute
from pgbaton.migrate.status import wait_synced
from pgbaton.migrate.switch_exec import switchover
from tests.migrate.conftest import Migration
from tests.migrate.test_switchover import PGBOUNCER, BouncedMigration, Load, _assert_back_on_source, bounced

pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed")


@pytest.fixture
def migration(migration: Migration) -> Iterator[BouncedMigration]:
    yield from bounced(migration)


def test_pause_gives_up_on_a_long_transaction_and_rolls_back(migration: BouncedMigration) -> None:
    m = migration
    assert m.bouncer is not None
    raw = m.config.model_dump(mode="json", exclude_none=True)
    raw["migrations"][m.name]["switch"]["pause_timeout_seconds"] = 2
    m.config = parse_config(raw)
    with Load([m.bouncer.dsn(db) for db in m.databases[1:]]) as load:
        execute.start(m.config, m.name)
        wait_synced(m.config, m.name, timeout=60)
        with psycopg.connect(m.bouncer.dsn(m.databases[0])) as long_tx:  # a transaction left open
            long_tx.execute("INSERT INTO orders (amount, note) VALUES (1, 'long')")
            began = time.monotonic()
            with pytest.raises(PgbatonError, match=r"PAUSE did not complete within 2 s.*rolled back: "
                                                   r"resume_clients"):
                switchover(m.config, m.name)
            assert time.monotonic() - began < 15
            long_tx.commit()  # the open transaction was never harmed
        with psycopg.connect(m.bouncer.dsn(m.databases[0]), autocommit=True, connect_timeout=5) as c:
            c.execute("SET statement_timeout = '5s'")
            c.execute("INSERT INTO orders (amount, note) VALUES (1, 'after')")  # not paused any more
        _assert_back_on_source(m, load)
    assert load.failures == []
    with psycopg.connect(m.source.dsn(m.databases[0])) as s:
        assert s.execute("SELECT count(*) FROM orders WHERE note IN ('long', 'after')").fetchone() == (2,)
