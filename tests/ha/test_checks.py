"""Settings the agent needs, read with ``postgres -C`` at validate-all and start (real data directory)."""

from __future__ import annotations

import shutil
import subprocess

from tests.ha.conftest import Pair, wait_for
from tests.ha.test_agent import ERR, OK, PROMOTED, bootstrap

CONFIGURED = 6   # OCF_ERR_CONFIGURED


def test_each_missing_setting_is_named(pair: Pair) -> None:
    conf = pair.nodes["n1"].pgdata / "postgresql.conf"
    original = conf.read_text()
    conf.write_text(original + "wal_log_hints = off\nhot_standby = off\nmax_replication_slots = 0\n"
                               "max_wal_senders = 2\n")
    assert pair.run("n1", "validate-all") == CONFIGURED
    log = (pair.root / "agent.log").read_text()
    for name in ("wal_log_hints = off and no data checksums", "hot_standby = off", "max_replication_slots = 0",
                 "max_wal_senders = 2: at least 3"):
        assert name in log, name
    assert pair.run("n1", "start") == CONFIGURED
    assert pair.nodes["n1"].postmaster_pid() is None
    conf.write_text(original)
    assert pair.run("n1", "validate-all") == OK
    assert pair.run("n1", "start") == OK


def test_archive_failures_are_reported(pair: Pair) -> None:
    n1 = pair.nodes["n1"]
    with open(n1.pgdata / "postgresql.conf", "a", encoding="utf-8") as fh:
        fh.write("archive_mode = on\narchive_command = 'false'\n")
    assert pair.run("n1", "start") == OK
    assert pair.notify("n1", "pre", "promote", "n1") == OK
    assert pair.run("n1", "promote") == OK
    n1.sql("CREATE TABLE t (id int)")
    n1.sql("SELECT pg_switch_wal()")
    wait_for(lambda: n1.sql("SELECT failed_count > 0 FROM pg_stat_archiver") == [(True,)], 30, "archiving fails")
    assert pair.run("n1", "monitor") == PROMOTED
    assert "WAL archiving fails" in pair.attrs()["n1/archive"]
    n1.sql("ALTER SYSTEM SET archive_command = 'true'")
    n1.sql("SELECT pg_reload_conf()")
    wait_for(lambda: n1.sql("SELECT last_archived_time >= last_failed_time FROM pg_stat_archiver") == [(True,)],
             90, "archiving works again")
    assert pair.run("n1", "monitor") == PROMOTED
    assert "n1/archive" not in pair.attrs()


def test_rebuild_refuses_a_copy_the_disk_cannot_hold(pair: Pair) -> None:
    bootstrap(pair)
    n1, n2 = pair.nodes["n1"], pair.nodes["n2"]
    assert pair.run("n2", "stop") == OK
    assert pair.run("n1", "monitor") == PROMOTED
    n1.sql("CREATE TABLE filler AS SELECT g, repeat('x', 500) AS pad FROM generate_series(1, 100000) g")
    shutil.rmtree(n2.pgdata)
    shutil.rmtree(n2.base / ".data.pgbaton", ignore_errors=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=40m,mode=1777", "tmpfs", str(n2.base)], check=True)
    try:
        assert pair.run("n2", "start") == ERR
        state = (n2.base / ".data.pgbaton" / "rebuild.json").read_text()
        assert "not enough free space" in state
        assert not n2.pgdata.exists()          # pg_basebackup never started
    finally:
        subprocess.run(["umount", str(n2.base)], check=True)
