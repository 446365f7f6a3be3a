"""The agent, action by action, against two real PostgreSQL 15 instances."""

from __future__ import annotations

import time

import psycopg
import pytest

from tests.ha.conftest import Pair, wait_for

OK, ERR, NOT_RUNNING, PROMOTED, FAILED_PROMOTED = 0, 1, 7, 8, 9


def sync_names(pair: Pair, node: str) -> str:
    return str(pair.nodes[node].sql("SHOW synchronous_standby_names")[0][0])


def streaming_to(pair: Pair, primary: str) -> list[tuple[object, ...]]:
    """Cluster standbys (not pg_basebackup) streaming from ``primary``."""
    return pair.nodes[primary].sql("SELECT application_name, sync_state FROM pg_stat_replication"
                                   " WHERE state = 'streaming' AND application_name IN ('n1', 'n2')")


def bootstrap(pair: Pair) -> None:
    """n1 starts as a standby (start never makes a primary), is promoted, n2 is built from it."""
    assert pair.run("n1", "monitor") == NOT_RUNNING
    assert pair.run("n1", "start") == OK
    assert (pair.nodes["n1"].pgdata / "standby.signal").exists()
    assert pair.nodes["n1"].sql("SELECT pg_is_in_recovery()") == [(True,)]
    assert pair.run("n1", "monitor") == OK
    assert pair.notify("n1", "pre", "promote", "n1") == OK
    assert pair.run("n1", "promote") == OK
    assert pair.notify("n1", "post", "promote", "n1") == OK
    assert pair.run("n1", "monitor") == PROMOTED
    pair.nodes["n1"].sql("CREATE TABLE t (id int PRIMARY KEY, note text)")
    pair.nodes["n1"].sql("INSERT INTO t SELECT g, 'before n2' FROM generate_series(1, 100) g")
    # n2 has an empty data directory: slot first, then pg_basebackup with it
    assert pair.run("n2", "monitor") == NOT_RUNNING
    assert pair.run("n2", "start") == OK
    assert pair.nodes["n1"].sql("SELECT slot_name, active FROM pg_replication_slots") == [("pgbaton_n2", True)]
    wait_for(lambda: streaming_to(pair, "n1"), 20, "n2 streams")
    assert pair.run("n2", "monitor") == OK
    assert pair.run("n1", "monitor") == PROMOTED


def test_bootstrap_rebuild_and_sync_switching(pair: Pair) -> None:
    bootstrap(pair)
    n1, n2 = pair.nodes["n1"], pair.nodes["n2"]
    assert n2.sql("SELECT count(*) FROM t") == [(100,)]
    # the primary turned synchronous replication on for the streaming standby
    assert sync_names(pair, "n1") == 'FIRST 1 ("n2")'
    wait_for(lambda: streaming_to(pair, "n1") == [("n2", "sync")], 10, "n2 in sync")
    assert pair.run("n1", "monitor") == PROMOTED
    attrs = pair.attrs()
    assert attrs["n1/score"] == "1001" and attrs["n2/score"] == "1000"
    assert pair.durable() == {"n1/in-sync": "1", "n2/in-sync": "1"}

    # the standby goes away: the primary goes asynchronous and keeps taking writes
    assert pair.run("n2", "stop") == OK
    assert pair.run("n2", "monitor") == NOT_RUNNING
    assert pair.run("n1", "monitor") == PROMOTED
    assert sync_names(pair, "n1") == ""
    with psycopg.connect(n1.dsn(), autocommit=True) as conn:
        conn.execute("SET statement_timeout = '5s'")
        conn.execute("INSERT INTO t VALUES (101, 'while n2 was down')")
    assert pair.attrs()["n2/score"] == "-1" and pair.durable()["n2/in-sync"] == "0"

    # it comes back: catches up, and the primary is synchronous again
    assert pair.run("n2", "start") == OK
    wait_for(lambda: streaming_to(pair, "n1"), 20, "n2 streams again")
    assert pair.run("n1", "monitor") == PROMOTED
    assert sync_names(pair, "n1") == 'FIRST 1 ("n2")'
    n1.sql("INSERT INTO t VALUES (102, 'synchronous again')")
    wait_for(lambda: n2.sql("SELECT note FROM t WHERE id IN (101, 102) ORDER BY id") == [
        ("while n2 was down",), ("synchronous again",)], 10, "rows on n2")
    assert pair.run("n1", "monitor") == PROMOTED
    assert pair.durable()["n2/in-sync"] == "1"


def test_switchover_demote_then_promote(pair: Pair) -> None:
    bootstrap(pair)
    n1, n2 = pair.nodes["n1"], pair.nodes["n2"]
    wait_for(lambda: streaming_to(pair, "n1") == [("n2", "sync")], 10, "n2 in sync")
    assert pair.run("n1", "monitor") == PROMOTED
    # what Pacemaker does for a planned move: demote the primary, then promote the standby
    assert pair.run("n1", "demote") == OK
    assert n1.sql("SELECT pg_is_in_recovery()") == [(True,)]
    assert pair.notify("n1", "pre", "promote", "n2") == OK
    assert pair.notify("n2", "pre", "promote", "n2") == OK
    assert pair.run("n2", "promote") == OK
    assert pair.notify("n2", "post", "promote", "n2") == OK
    assert pair.run("n2", "monitor") == PROMOTED
    n2.sql("INSERT INTO t VALUES (200, 'after switchover')")
    # the old primary follows the new timeline without a rewind
    wait_for(lambda: streaming_to(pair, "n2"), 20, "n1 streams from n2")
    wait_for(lambda: n1.sql("SELECT count(*) FROM t WHERE id = 200") == [(1,)], 10, "row on n1")
    assert pair.run("n1", "monitor") == OK
    assert pair.run("n2", "monitor") == PROMOTED
    assert sync_names(pair, "n2") == 'FIRST 1 ("n1")'
    assert pair.run("n1", "promote") == ERR   # never beside a live primary


def diverge(pair: Pair) -> None:
    """n2 misses writes of n1, n1 dies, n2 is promoted (forced: it was not in sync)."""
    n1 = pair.nodes["n1"]
    assert pair.run("n2", "stop") == OK
    assert pair.run("n1", "monitor") == PROMOTED      # records n2 as out of sync, goes async
    n1.sql("INSERT INTO t SELECT g, 'lost on n1' FROM generate_series(1000, 1999) g")
    pair.kill9("n1")
    assert pair.run("n1", "monitor") == FAILED_PROMOTED
    assert pair.attrs()["n1/score"] == "-1"
    assert pair.run("n2", "start") == OK               # no primary anywhere: plain standby
    assert pair.notify("n2", "pre", "promote", "n2") == OK
    assert pair.run("n2", "promote") == ERR            # not in sync: refused
    assert pair.run("n2", "promote", force_promote="true") == OK
    pair.nodes["n2"].sql("INSERT INTO t VALUES (300, 'on the new timeline')")


def test_rewind_after_divergence(pair: Pair) -> None:
    bootstrap(pair)
    diverge(pair)
    n1 = pair.nodes["n1"]
    # the crashed primary starts as a standby: pg_rewind (with crash recovery) onto n2's timeline
    assert pair.run("n1", "start") == OK
    assert not (n1.base / "data.pgbaton-old").exists()
    wait_for(lambda: streaming_to(pair, "n2"), 20, "n1 streams from n2")
    wait_for(lambda: n1.sql("SELECT count(*) FROM t WHERE id = 300") == [(1,)], 10, "new row on n1")
    assert n1.sql("SELECT count(*) FROM t WHERE id >= 1000 AND id < 2000") == [(0,)]
    assert n1.sql("SELECT pg_is_in_recovery()") == [(True,)]
    assert pair.run("n1", "monitor") == OK


def test_failed_rewind_falls_back_to_rebuild_keeping_old_data(pair: Pair) -> None:
    bootstrap(pair)
    diverge(pair)
    n1 = pair.nodes["n1"]
    # pg_rewind cannot log in as this role: the agent copies everything again instead
    assert pair.run("n1", "start", rewind_user="nobody_here") == OK
    old = n1.base / "data.pgbaton-old"
    assert (old / "PG_VERSION").exists()
    wait_for(lambda: streaming_to(pair, "n2"), 20, "n1 streams from n2")
    wait_for(lambda: n1.sql("SELECT count(*) FROM t WHERE id = 300") == [(1,)], 10, "new row on n1")
    assert n1.sql("SELECT count(*) FROM t WHERE id >= 1000 AND id < 2000") == [(0,)]


def test_rebuild_does_not_block_monitor(pair: Pair) -> None:
    bootstrap(pair)
    assert pair.run("n2", "stop") == OK
    assert pair.run("n1", "monitor") == PROMOTED      # asynchronous now: writes do not wait for n2
    pair.nodes["n1"].sql("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 40000) g")
    # an unusable data directory: the control file is gone
    (pair.nodes["n2"].pgdata / "global" / "pg_control").unlink()
    slow = {"basebackup_options": "--max-rate=4M", "OCF_RESKEY_CRM_meta_timeout": "12000"}
    t0 = time.monotonic()
    assert pair.run("n2", "start", **slow) == OK
    assert time.monotonic() - t0 < 12
    t0 = time.monotonic()
    assert pair.run("n2", "monitor", OCF_RESKEY_CRM_meta_interval="16000") == OK   # being built
    assert time.monotonic() - t0 < 5
    assert pair.attrs()["n2/score"] == "-1"
    wait_for(lambda: streaming_to(pair, "n1"), 90, "rebuilt n2 streams")
    assert pair.run("n2", "monitor", OCF_RESKEY_CRM_meta_interval="16000") == OK
    assert pair.nodes["n2"].sql("SELECT count(*) FROM filler") == [(40000,)]


@pytest.mark.parametrize("action", ["meta-data", "validate-all", "reload"])
def test_simple_actions(pair: Pair, action: str) -> None:
    assert pair.run("n1", action) == OK
    assert pair.run("n1", "validate-all", replication_mode="sometimes") == 6   # OCF_ERR_CONFIGURED
    assert pair.run("n1", "validate-all", bindir="/nonexistent") == 5        # OCF_ERR_INSTALLED
