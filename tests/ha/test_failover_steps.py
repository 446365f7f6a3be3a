"""The steps of a kill -9 failover that used to waste seconds, against real PostgreSQL (issue 13, time goals).

Found by timing failovers in the cluster from its logs (tests/ha/timeline.py, docs/ha.md
"Where the seconds go").
"""

from __future__ import annotations

import subprocess
import time

from tests.ha.conftest import Pair, wait_for
from tests.ha.test_agent import OK, PROMOTED


def _zombie() -> subprocess.Popen[bytes]:
    """A child of the server's user that has exited and is not reaped yet: a zombie PID that
    PostgreSQL's ``kill(pid, 0)`` finds alive (one of another user it would take as stale)."""
    child = subprocess.Popen(["true"], user="postgres")
    wait_for(lambda: open(f"/proc/{child.pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z", 10,
             "the child is a zombie")
    return child


def test_demote_of_a_crashed_primary_whose_pid_is_a_zombie_starts_at_once(pair: Pair) -> None:
    """A killed postmaster that nothing has reaped yet left its PID in the socket's lock file:
    PostgreSQL takes the zombie for a live server and refuses to start. The demote of the
    crashed primary used to wait 5 s for a postmaster that had already given up, then retry."""
    n1 = pair.nodes["n1"]
    assert pair.run("n1", "start") == OK
    assert pair.notify("n1", "pre", "promote", "n1") == OK
    assert pair.run("n1", "promote") == OK
    assert pair.run("n1", "monitor") == PROMOTED
    pair.kill9("n1")
    zombie = _zombie()
    try:
        lock = n1.base / f".s.PGSQL.{n1.port}.lock"
        lines = lock.read_text().splitlines()
        lock.write_text("\n".join([str(zombie.pid), *lines[1:]]) + "\n")
        log = n1.base / "data.log"
        size = log.stat().st_size
        t0 = time.monotonic()
        assert pair.run("n1", "demote") == OK
        took = time.monotonic() - t0
        wait_for(lambda: n1.sql("SELECT pg_is_in_recovery()") == [(True,)], 30, "n1 a standby")
        assert "already exists" not in log.read_text()[size:]
        assert took < 4, f"demote took {took:.1f} s"
    finally:
        zombie.wait()
