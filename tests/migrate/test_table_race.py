"""No table behind: a table of 200,000 rows created by replicated DDL at a random moment 0-3 s
before each switchover and switchback, through PgBouncer, on real servers.

Seeded: ``PGBATON_SEED`` picks the database and the moment of each round, ``PGBATON_TABLE_RACE_SWITCHES``
the number of switches per variant (10 by default, alternating directions).  Two variants: as
shipped (tables are added to the subscription before the pause, and checked again inside it),
and with the early step turned off, so that the check inside the pause does all the work.
After every switch, either the switch completed or it rolled back, and the primary (where
PgBouncer sends the clients) holds every row of every table that was committed; after a
completed switch the frozen old side and the new one agree table by table.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg
import pytest

from pgbaton.errors import PgbatonError
from pgbaton.migrate import execute, switch_exec, tend
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.finish import finish
from pgbaton.migrate.status import wait_synced
from pgbaton.migrate.switch_exec import switchback, switchover
from pgbaton.migrate.switchover import Decision
from tests.migrate.conftest import Migration
from tests.migrate.test_finish import _leftovers
from tests.migrate.test_switchover import PGBOUNCER, BouncedMigration, bounced

pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed")

ROWS = 200_000
SWITCHES = int(os.environ.get("PGBATON_TABLE_RACE_SWITCHES", "10"))
SEED = int(os.environ.get("PGBATON_SEED", "20261202"))


@pytest.fixture
def migration(migration: Migration) -> Iterator[BouncedMigration]:
    yield from bounced(migration)


@dataclass
class Creator:
    """A client that creates one table and fills it, in one transaction, through PgBouncer."""

    dsn: str
    table: str
    committed: bool = False
    error: str | None = None
    seconds: float = 0.0
    thread: threading.Thread = field(init=False)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began = time.monotonic()
        try:
            with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as c, c.transaction():
                c.execute(f"CREATE TABLE {self.table} (id int PRIMARY KEY, v text)")
                c.execute(f"INSERT INTO {self.table} SELECT g, md5(g::text) FROM generate_series(1, {ROWS}) g")
            self.committed = True
        except psycopg.Error as exc:
            self.error = str(exc)
        self.seconds = time.monotonic() - began


def _count(dsn: str, table: str) -> int | None:
    with psycopg.connect(dsn) as c:
        if c.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            return None
        row = c.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize(("early", "tending", "switches"),
                         [(True, False, SWITCHES), (False, False, SWITCHES), (True, True, max(2, SWITCHES // 2))],
                         ids=["early-refresh", "pause-check-only", "with-migrate-run"])
def test_a_table_created_just_before_each_switch_is_never_left_behind(
        migration: BouncedMigration, early: bool, tending: bool, switches: int,
        monkeypatch: pytest.MonkeyPatch) -> None:
    m = migration
    assert m.bouncer is not None
    if not early:
        monkeypatch.setattr(switch_exec, "_tables_ready", lambda r: Decision(True, ()))
    rng = random.Random(SEED + early + 2 * tending)
    execute.start(m.config, m.name)
    wait_synced(m.config, m.name, timeout=60)
    stop = threading.Event()
    runner = threading.Thread(target=tend.run, args=(m.config, m.name, stop), kwargs={"interval": 0.3})
    if tending:  # `migrate run` passes race the switches (they wait for each other on the migration's lock)
        runner.start()
    try:
        _rounds(m, rng, switches)
    finally:
        stop.set()
        if tending:
            runner.join(30)
    finish(m.config, m.name)
    assert _leftovers(m) == []


def _rounds(m: BouncedMigration, rng: random.Random, switches: int) -> None:
    assert m.bouncer is not None
    on_target = False
    created: list[tuple[str, str]] = []  # (database, table) committed by a client
    outcomes: list[str] = []
    for i in range(switches):
        db, delay = rng.choice(m.databases), rng.uniform(0.0, 3.0)
        creator = Creator(m.bouncer.dsn(db), f"burst_{i}")
        creator.thread.start()
        time.sleep(delay)
        command = switchback if on_target else switchover
        try:
            res = command(m.config, m.name)
            switched, why = res.switched, "; ".join(res.reasons)
        except PgbatonError as exc:  # a step failed and was rolled back
            switched, why = False, str(exc)
        creator.thread.join(120)
        assert creator.committed, (i, creator.error)
        created.append((db, creator.table))
        outcomes.append(f"{i}: {command.__name__} {'done' if switched else 'rolled back: ' + why} "
                        f"(table {delay:.2f} s before, its transaction {creator.seconds:.2f} s, "
                        f"clients paused {getattr(res, 'paused_seconds', None) if switched else '-'} s)")
        if switched:
            on_target = not on_target
        with psycopg.connect(m.target.dsn(), autocommit=True) as t:
            catalog = Catalog(t, "pgbaton_migrate", m.name)
            assert catalog.switch_steps() == {}, outcomes  # complete or rolled back, never half done
            assert catalog.state() in (("switched",) if on_target else ("streaming", "switched_back")), outcomes
        primary, frozen = (m.target, m.source) if on_target else (m.source, m.target)
        assert f"port={primary.port}" in m.bouncer.ini.read_text()
        for cdb, table in created:
            assert _count(primary.dsn(cdb), table) == ROWS, (cdb, table, outcomes)  # 0 rows lost
            if switched:  # the side just left is frozen: whole tables or ones made on the new side since
                old = _count(frozen.dsn(cdb), table)
                assert old in (None, 0, ROWS), (cdb, table, old, outcomes)
    print("\n" + "\n".join(outcomes))
    assert sum("done" in o for o in outcomes) >= switches // 2, outcomes  # most switches go through
