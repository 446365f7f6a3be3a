"""Settings the agent needs, read with ``postgres -C`` at validate-all and start (real data directory)."""

from __future__ import annotations

from tests.ha.conftest import Pair
from tests.ha.test_agent import OK

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
