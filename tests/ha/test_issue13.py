"""Regression tests for the HA agent bugs of issue 13, each against real PostgreSQL instances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg

from tests.ha.conftest import PG_BIN, Pair, _alive, wait_for
from tests.ha.test_agent import ERR, OK, PROMOTED, bootstrap, diverge, streaming_to, sync_names


def backend_pid(pair: Pair, node: str, backend_type: str) -> int:
    rows = pair.nodes[node].sql("SELECT pid FROM pg_stat_activity WHERE backend_type = %s", backend_type)
    assert rows, f"no {backend_type} on {node}"
    return int(str(rows[0][0]))


def test_demote_of_a_crashed_primary_is_no_failure(pair: Pair) -> None:
    bootstrap(pair)
    pair.kill9("n1")
    # Pacemaker demotes the failed primary first: no failed action; it comes back as a standby
    assert pair.run("n1", "demote") == OK
    wait_for(lambda: pair.nodes["n1"].sql("SELECT pg_is_in_recovery()") == [(True,)], 30, "n1 a standby")
    assert pair.run("n1", "monitor", OCF_RESKEY_CRM_meta_interval="3000") == OK
    assert pair.run("n1", "stop") == OK


def test_diverged_standby_is_reported_at_once_and_rewound(pair: Pair) -> None:
    bootstrap(pair)
    diverge(pair)                       # n1 crashed with writes n2 never got; n2 forced primary
    n1 = pair.nodes["n1"]
    assert pair.run("n1", "demote") == OK           # the cluster's recovery: demote, then stop/start
    wait_for(lambda: n1.sql("SELECT pg_is_in_recovery()") == [(True,)], 30, "n1 a standby")
    # the first monitor says it (stream_failures is 2), with a node attribute
    assert pair.run("n1", "monitor", OCF_RESKEY_CRM_meta_interval="3000") == ERR
    assert "past where the primary n2" in pair.attrs()["n1/diverged"]
    assert pair.run("n1", "stop") == OK
    assert pair.run("n1", "start") == OK            # pg_rewind
    wait_for(lambda: streaming_to(pair, "n2"), 30, "n1 streams from n2")
    assert n1.sql("SELECT count(*) FROM t WHERE id >= 1000 AND id < 2000") == [(0,)]
    assert pair.run("n1", "monitor", OCF_RESKEY_CRM_meta_interval="3000") == OK
    assert "n1/diverged" not in pair.attrs()


def test_promote_checkpoint_is_bounded(pair: Pair) -> None:
    bootstrap(pair)
    wait_for(lambda: streaming_to(pair, "n1") == [("n2", "sync")], 10, "n2 in sync")
    assert pair.run("n1", "monitor") == PROMOTED      # records n2 as in sync
    assert pair.run("n1", "demote") == OK
    checkpointer = backend_pid(pair, "n2", "checkpointer")
    os.kill(checkpointer, signal.SIGSTOP)      # a CHECKPOINT on n2 now waits for ever
    try:
        assert pair.notify("n2", "pre", "promote", "n2") == OK
        assert pair.notify("n1", "pre", "promote", "n2") == OK
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pgbaton.ocf", "promote"],
                              env=pair.env("n2", OCF_RESKEY_CRM_meta_timeout="20000"),
                              capture_output=True, text=True, timeout=60, check=False)
        took = time.monotonic() - t0
        assert proc.returncode == OK, proc.stderr
        assert took < 20, f"promote took {took:.1f} s, beyond its 20 s timeout"
        assert "CHECKPOINT did not finish" in proc.stderr
    finally:
        os.kill(checkpointer, signal.SIGCONT)
    assert pair.run("n2", "monitor") == PROMOTED
    pair.nodes["n2"].sql("INSERT INTO t VALUES (500, 'after a slow checkpoint')")




def timeline(pair: Pair, node: str) -> int:
    return int(str(pair.nodes[node].sql("SELECT timeline_id FROM pg_control_checkpoint()")[0][0]))


def switch(pair: Pair, old: str, new: str) -> None:
    """What Pacemaker does for a planned move of the promoted role from ``old`` to ``new``."""
    assert pair.run(old, "demote") == OK
    for node in (old, new):
        assert pair.notify(node, "pre", "promote", new) == OK
    assert pair.run(new, "promote") == OK, f"promotion of {new} refused"
    for node in (old, new):
        assert pair.notify(node, "post", "promote", new) == OK
    assert pair.run(new, "monitor") == PROMOTED


def test_switch_and_immediate_switch_back_do_not_loop(pair: Pair) -> None:
    bootstrap(pair)
    wait_for(lambda: streaming_to(pair, "n1") == [("n2", "sync")], 10, "n2 in sync")
    assert pair.run("n1", "monitor") == PROMOTED
    start_tli = timeline(pair, "n1")
    order = [("n1", "n2"), ("n2", "n1"), ("n1", "n2"), ("n2", "n1")]
    for i, (old, new) in enumerate(order, 1):
        # the switch back follows at once: no monitor in between, the standby may not stream yet
        switch(pair, old, new)
        pair.nodes[new].sql("INSERT INTO t VALUES (%s, 'switch')", 1000 + i)
        assert timeline(pair, new) == start_tli + i      # one promotion per switch, no more
    wait_for(lambda: streaming_to(pair, "n1"), 20, "n2 streams from n1")
    wait_for(lambda: pair.nodes["n2"].sql("SELECT count(*) FROM t WHERE id > 1000") == [(4,)], 10, "rows on n2")


def test_full_crash_after_async_commits_promotes_the_old_primary(pair: Pair) -> None:
    bootstrap(pair)
    n1, n2 = pair.nodes["n1"], pair.nodes["n2"]
    wait_for(lambda: streaming_to(pair, "n1") == [("n2", "sync")], 10, "n2 in sync")
    assert pair.run("n1", "monitor") == PROMOTED
    # the standby goes down; the primary acknowledges 1,000 commits alone, then dies
    assert pair.run("n2", "stop") == OK
    assert pair.run("n1", "monitor") == PROMOTED
    with psycopg.connect(n1.dsn(), autocommit=True) as conn:
        for i in range(1000):
            conn.execute("INSERT INTO t VALUES (%s, 'acknowledged while alone')", (10000 + i,))
    pair.kill9("n1")
    pair.restart_cluster()
    # the standby comes back first: it must not be promoted while the old primary may return
    assert pair.run("n2", "start") == OK
    assert pair.run("n2", "monitor") == OK
    assert pair.attrs()["n2/score"] == "-1"
    assert pair.notify("n2", "pre", "promote", "n2") == OK
    assert pair.run("n2", "promote") == ERR
    # the old primary comes back: crash recovery as a standby, then it is the one elected
    assert pair.run("n1", "start") == OK
    assert pair.run("n1", "monitor") == OK
    assert pair.run("n2", "monitor") == OK
    assert pair.attrs()["n1/score"] == "100" and pair.attrs()["n2/score"] == "-1"
    for node in ("n1", "n2"):
        assert pair.notify(node, "pre", "promote", "n2") == OK
    assert pair.run("n2", "promote") == ERR            # even if the cluster asks for it
    for node in ("n1", "n2"):
        assert pair.notify(node, "pre", "promote", "n1") == OK
    assert pair.run("n1", "promote") == OK
    assert n1.sql("SELECT count(*) FROM t WHERE id >= 10000") == [(1000,)]
    # the standby was behind on the same history: it follows the new primary
    wait_for(lambda: streaming_to(pair, "n1"), 30, "n2 streams from n1")
    wait_for(lambda: n2.sql("SELECT count(*) FROM t WHERE id >= 10000") == [(1000,)], 20, "rows on n2")


def test_standby_alone_after_full_crash_needs_force(pair: Pair) -> None:
    bootstrap(pair)
    assert pair.run("n2", "stop") == OK
    assert pair.run("n1", "monitor") == PROMOTED
    pair.nodes["n1"].sql("INSERT INTO t VALUES (20000, 'only on n1')")
    pair.kill9("n1")
    pair.restart_cluster()
    assert pair.run("n2", "start") == OK
    assert pair.run("n2", "monitor") == OK
    assert pair.attrs()["n2/score"] == "-1"
    # the operator accepts the loss: force_promote (documented in docs/ha.md)
    assert pair.run("n2", "monitor", force_promote="true") == OK
    assert pair.attrs()["n2/score"] == "100"
    assert pair.notify("n2", "pre", "promote", "n2") == OK
    assert pair.run("n2", "promote", force_promote="true") == OK


def test_sync_names_stay_until_the_standby_is_recorded_out_of_sync(pair: Pair) -> None:
    bootstrap(pair)
    wait_for(lambda: streaming_to(pair, "n1") == [("n2", "sync")], 10, "n2 in sync")
    assert pair.run("n1", "monitor") == PROMOTED
    assert pair.durable()["n2/in-sync"] == "1"
    assert pair.run("n2", "stop") == OK
    # the durable record cannot be written: writes keep waiting for the standby rather than
    # being acknowledged by the primary alone while n2 still counts as holding them all
    durable = pair.attr_dir / "pgsql.durable.json"
    saved = durable.read_text()
    durable.unlink()
    durable.mkdir()
    try:
        assert pair.run("n1", "monitor") == PROMOTED       # a healthy primary is not failed
        assert sync_names(pair, "n1") == 'FIRST 1 ("n2")'
        assert "synchronous_standby_names left as it is" in pair.attrs()["n1/housekeeping"]
    finally:
        durable.rmdir()
        durable.write_text(saved)
    assert pair.run("n1", "monitor") == PROMOTED
    assert pair.durable()["n2/in-sync"] == "0"
    assert sync_names(pair, "n1") == ""
    assert "n1/housekeeping" not in pair.attrs()


def test_housekeeping_errors_do_not_fail_a_healthy_primary(pair: Pair) -> None:
    n1 = pair.nodes["n1"]
    assert pair.run("n1", "start") == OK
    assert pair.notify("n1", "pre", "promote", "n1") == OK
    assert pair.run("n1", "promote") == OK
    # every replication slot is taken: the peer's slot (made at promote) is gone and cannot be created
    n1.sql("SELECT pg_drop_replication_slot('pgbaton_n2')")
    limit = int(str(n1.sql("SHOW max_replication_slots")[0][0]))
    for i in range(limit):
        n1.sql("SELECT pg_create_physical_replication_slot(%s)", f"filler_{i}")
    assert pair.run("n1", "monitor") == PROMOTED
    assert "replication slots" in pair.attrs()["n1/housekeeping"]
    n1.sql("CREATE TABLE t (id int PRIMARY KEY, note text)")
    n1.sql("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name LIKE 'filler_%'")
    assert pair.run("n1", "monitor") == PROMOTED
    assert "n1/housekeeping" not in pair.attrs()
    # ALTER SYSTEM fails (its temporary file cannot be written): still a healthy primary
    assert pair.run("n2", "start") == OK
    wait_for(lambda: streaming_to(pair, "n1"), 30, "n2 streams")
    blocker = n1.pgdata / "postgresql.auto.conf.tmp"
    blocker.mkdir()
    try:
        assert pair.run("n1", "monitor") == PROMOTED
        assert "synchronous_standby_names" in pair.attrs()["n1/housekeeping"]
        assert sync_names(pair, "n1") == ""
        n1.sql("INSERT INTO t VALUES (1, 'still writable')")
    finally:
        blocker.rmdir()
    assert pair.run("n1", "monitor") == PROMOTED
    assert sync_names(pair, "n1") == 'FIRST 1 ("n2")'


def startup_process(postmaster: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            title = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == postmaster and b"startup" in title:
            return int(entry.name)
    return None


def test_long_replay_before_consistency_is_not_a_broken_standby(pair: Pair) -> None:
    bootstrap(pair)
    n1, n2 = pair.nodes["n1"], pair.nodes["n2"]
    # the standby writes data pages often (small buffers) and rarely restarts its checkpoints:
    # after a crash it must replay a lot before it is consistent and takes connections
    assert pair.run("n2", "stop") == OK
    with open(n2.pgdata / "postgresql.conf", "a", encoding="utf-8") as fh:
        fh.write("shared_buffers = '16MB'\ncheckpoint_timeout = '1h'\nmax_wal_size = '4GB'\n")
    assert pair.run("n2", "start") == OK
    wait_for(lambda: streaming_to(pair, "n1"), 20, "n2 streams")
    n1.sql("CREATE TABLE big AS SELECT g, repeat('x', 300) AS pad FROM generate_series(1, 150000) g")
    lsn = n1.sql("SELECT pg_current_wal_flush_lsn()")[0][0]
    wait_for(lambda: n2.sql("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", lsn) == [(True,)], 60, "n2 replayed")
    pid = n2.postmaster_pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not _alive(pid), 10, "n2 down")
    # its postmaster may linger as a zombie for a while, holding its lock files for PostgreSQL
    (n2.pgdata / "postmaster.pid").unlink()
    (n2.base / f".s.PGSQL.{n2.port}.lock").unlink(missing_ok=True)
    # start it by hand, without waiting, and hold its startup process in the middle of the replay
    subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(n2.pgdata), "-W",
                    "-l", str(n2.base / "data.log"), "-o", f"-p {n2.port} -k {n2.base}", "start"],
                   check=True, capture_output=True, timeout=30)
    startup = None
    deadline = time.monotonic() + 10
    while startup is None and time.monotonic() < deadline:
        postmaster = n2.postmaster_pid()
        startup = startup_process(postmaster) if postmaster else None
    assert startup is not None, "no startup process seen"
    os.kill(startup, signal.SIGSTOP)
    try:
        lines = (n2.pgdata / "postmaster.pid").read_text().splitlines()
        assert lines[7].strip() == "starting", "the standby became consistent before the test could hold it"
        for _ in range(3):       # stream_failures is 2 in these tests
            assert pair.run("n2", "monitor", OCF_RESKEY_CRM_meta_interval="3000") == OK
    finally:
        os.kill(startup, signal.SIGCONT)
    wait_for(lambda: streaming_to(pair, "n1"), 60, "n2 streams after its replay")
    assert pair.run("n2", "monitor", OCF_RESKEY_CRM_meta_interval="3000") == OK


def test_failed_rebuild_keeps_the_diverged_copy(pair: Pair) -> None:
    bootstrap(pair)
    diverge(pair)
    n1, n2 = pair.nodes["n1"], pair.nodes["n2"]
    (n1.pgdata / "diverged-marker").write_text("the data directory that held rows 1000-1999")
    n2.sql("CREATE TABLE filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 40000) g")
    # pg_rewind fails (it cannot log in), the rebuild times out half-way
    assert pair.run("n1", "start", rewind_user="nobody_here", basebackup_options="--max-rate=1M",
                    basebackup_timeout="2", OCF_RESKEY_CRM_meta_timeout="8000") == OK
    state = n1.base / ".data.pgbaton" / "rebuild.json"
    wait_for(lambda: '"failed"' in state.read_text(), 30, "the rebuild fails")
    old = n1.base / "data.pgbaton-old"
    assert (old / "diverged-marker").exists()
    assert (n1.pgdata / "PG_VERSION").exists() or not n1.pgdata.exists()     # what the copy left
    # the next start rebuilds again: the diverged copy is still the one kept aside
    assert pair.run("n1", "start", rewind_user="nobody_here") == OK
    wait_for(lambda: streaming_to(pair, "n2"), 60, "n1 rebuilt and streaming")
    assert (old / "diverged-marker").exists()
    assert not (n1.pgdata / "diverged-marker").exists()
