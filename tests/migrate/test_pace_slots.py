"""`start` paces the initial copies against a source with few replication slots.

Servers of this module's own: a PostgreSQL 15 source with ``max_replication_slots`` = one per
database + 2 (room for the streams and one database's two table copies) and a PostgreSQL 18
target with 2 table copies per subscription.  Four databases of 12 tables each: `check` says one
database copies at a time, `start` queues three, `wait_synced` begins them one after another,
no table copy ever fails for want of a slot (``sync_error_count`` 0), and every table arrives
whole.  Without the pacing (the control), the same migration meets the slot limit.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pgbaton.config import Config, parse_config
from pgbaton.migrate import execute, pace, plan
from pgbaton.migrate.model import DbState
from pgbaton.migrate.probe import preflight_facts
from pgbaton.migrate.status import status, wait_synced
from pgbaton.sandbox.servers import PostgresServer, pg18_bin

DBS, TABLES, SYNC = 4, 12, 2


@pytest.fixture(scope="module")
def few_slots() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    base = Path(tempfile.mkdtemp(prefix="pgbaton-pace-"))
    base.chmod(0o1777)
    src = PostgresServer(base / "pg15", settings={"max_replication_slots": str(DBS + SYNC),
                                                   "max_wal_senders": "20"})
    tgt = PostgresServer(base / "pg18", bin_dir=pg18_bin(), settings={
        "max_sync_workers_per_subscription": str(SYNC), "max_logical_replication_workers": "16",
        "max_active_replication_origins": "16"})
    src.start()
    tgt.start()
    yield src, tgt
    tgt.stop()
    src.stop()
    shutil.rmtree(base, ignore_errors=True)


def _migration(src: PostgresServer, tgt: PostgresServer, rows: int = 3000) -> tuple[Config, str, list[str]]:
    tag = uuid.uuid4().hex[:6]
    name, dbs = f"p{tag}", [f"pace_{tag}_{i}" for i in range(DBS)]
    with psycopg.connect(src.dsn(), autocommit=True) as c:
        for db in dbs:
            c.execute(f'CREATE DATABASE "{db}"')
    for db in dbs:
        with psycopg.connect(src.dsn(db), autocommit=True) as c:
            c.execute("".join(f"CREATE TABLE t{i} (id int PRIMARY KEY, v text); INSERT INTO t{i} SELECT g, "
                              f"md5(g::text) FROM generate_series(1, {rows}) g;" for i in range(TABLES)))
    cfg = parse_config({"migrations": {name: {"source": {"port": src.port}, "target": {"port": tgt.port},
                                              "databases": dbs, "options": {"bin_dir": str(pg18_bin())}}}})
    return cfg, name, dbs


def _sync_errors(tgt: PostgresServer, dbs: list[str]) -> int:
    total = 0
    for db in dbs:
        with psycopg.connect(tgt.dsn(db)) as c:
            row = c.execute("SELECT coalesce(sum(sync_error_count), 0) FROM pg_stat_subscription_stats").fetchone()
            total += int(row[0]) if row else 0
    return total


def _copying(cfg: Config, name: str, stop: threading.Event, seen: list[int]) -> None:
    """Sample how many databases copy at once (from `status`, as a user sees it)."""
    while not stop.is_set():
        try:
            seen.append(sum(r.state is DbState.copying for r in status(cfg, name)))
        except Exception:  # noqa: BLE001 - a sample that meets a subscription being created
            pass
        time.sleep(0.1)


def _drop(src: PostgresServer, tgt: PostgresServer, cfg: Config, name: str, dbs: list[str]) -> None:
    try:
        execute.abort(cfg, name)
    finally:
        with psycopg.connect(src.dsn(), autocommit=True) as c:
            for db in dbs:
                c.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_start_queues_the_copies_that_do_not_fit_and_none_fails(few_slots: tuple[PostgresServer, PostgresServer]
                                                                ) -> None:
    src, tgt = few_slots
    cfg, name, dbs = _migration(src, tgt)
    try:
        verdicts = {v.item: v for v in plan.preflight(preflight_facts(cfg.migration(name), name))}
        slots = verdicts["source.max_replication_slots"]
        assert slots.status.value == "ok" and f"1 of {DBS} database(s) copy at once" in slots.detail, slots
        res = execute.start(cfg, name)
        queued = [db for db, steps in res.steps.items() if "queued" in steps]
        assert len(queued) == DBS - 1, res.steps
        states = {r.database: r.state for r in status(cfg, name)}
        assert [db for db, st in states.items() if st is DbState.queued] == queued, states
        assert states[dbs[0]] in (DbState.copying, DbState.streaming), states  # the first one may be done already
        stop, seen = threading.Event(), []  # type: ignore[var-annotated]
        sampler = threading.Thread(target=_copying, args=(cfg, name, stop, seen), daemon=True)
        sampler.start()
        try:
            wait_synced(cfg, name, timeout=240)  # begins the queued copies as the room frees
        finally:
            stop.set()
            sampler.join(10)
        assert seen and max(seen) <= 1, seen
        assert _sync_errors(tgt, dbs) == 0
        for db in dbs:
            with psycopg.connect(src.dsn(db)) as s, psycopg.connect(tgt.dsn(db)) as t:
                for i in range(TABLES):
                    q = f"SELECT count(*), sum(hashtext(v)) FROM t{i}"
                    assert s.execute(q).fetchone() == t.execute(q).fetchone(), (db, i)
        assert all(r.state is DbState.streaming for r in status(cfg, name))
    finally:
        _drop(src, tgt, cfg, name, dbs)


def test_control_without_pacing_the_table_copies_run_out_of_slots(few_slots: tuple[PostgresServer, PostgresServer],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    src, tgt = few_slots
    cfg, name, dbs = _migration(src, tgt, rows=40000)  # copies long enough to overlap
    seen_log = len(src.logfile.read_text(errors="replace"))  # only what this test's copies log counts
    monkeypatch.setattr(pace, "copies_at_once", lambda cap, n: n)  # every database at once, as before
    try:
        try:
            res = execute.start(cfg, name)
        except psycopg.errors.ConfigurationLimitExceeded:  # the copies took the slot a later database needed
            return
        assert not any("queued" in steps for steps in res.steps.values()), res.steps
        deadline = time.monotonic() + 90
        while _sync_errors(tgt, dbs) == 0 and "all replication slots are in use" not in src.logfile.read_text(
                errors="replace")[seen_log:]:
            assert time.monotonic() < deadline, "no table copy failed: the control does not show the limit"
            time.sleep(0.5)
    finally:
        _drop(src, tgt, cfg, name, dbs)
