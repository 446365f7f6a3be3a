"""Regression tests for the HA agent bugs of issue 13, each against real PostgreSQL instances."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.ha.conftest import Pair, wait_for
from tests.ha.test_agent import OK, PROMOTED, bootstrap, streaming_to


def backend_pid(pair: Pair, node: str, backend_type: str) -> int:
    rows = pair.nodes[node].sql("SELECT pid FROM pg_stat_activity WHERE backend_type = %s", backend_type)
    assert rows, f"no {backend_type} on {node}"
    return int(str(rows[0][0]))


def test_demote_of_a_crashed_primary_is_no_failure(pair: Pair) -> None:
    bootstrap(pair)
    pair.kill9("n1")
    # Pacemaker demotes the failed primary before stopping it: that must not record a failed action
    assert pair.run("n1", "demote") == OK
    assert pair.run("n1", "stop") == OK


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


