"""Failover in a real two-node Pacemaker + Corosync cluster (network namespaces on this machine).

kill -9 of the primary's postmaster while a client writes: the standby is promoted, the old
primary comes back as a standby, every acknowledged commit is on both nodes, and the
virtual IP (IPaddr2, inside the test's own network namespaces) follows the primary.
Run alone with ``pytest tests/ha -m pacemaker``; needs root, pacemaker, corosync and iproute2.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator

import pytest

from pgbaton.sandbox.ha_cluster import Cluster
from pgbaton.sandbox.ha_pacemaker import (
    VIP,
    bring_up,
    running_cluster,
    start_writer,
    stop_writer,
    streaming,
    usable,
    vip_node,
    wait,
)
from pgbaton.sandbox.ha_writer import parse

log = logging.getLogger(__name__)

pytestmark = [
    pytest.mark.pacemaker,
    pytest.mark.skipif(not usable(), reason="needs root, pacemaker, corosync, iproute2 and psql"),
]


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with running_cluster() as c:
        yield c


def test_kill9_primary_fails_over_without_losing_commits(cluster: Cluster) -> None:
    c = cluster
    n1, n2 = c.nodes
    bring_up(c)
    wait(lambda: vip_node(c) == n1.name, 30, "the virtual IP on node1")

    out = c.root / "writer.out"
    writer = start_writer(c, out)
    try:
        wait(lambda: out.read_text().count("\nok ") > 200, 30, "writes flowing")
        pid = n1.postmaster_pid()
        assert pid is not None
        killed_at = time.time()
        os.kill(pid, signal.SIGKILL)

        def first_write_on_node2() -> float | None:
            for line in out.read_text().splitlines():
                parts = line.split()
                if parts[:1] == ["ok"] and parts[2] == n2.ip and float(parts[3]) > killed_at:
                    return float(parts[3])
            return None

        new_write = wait(first_write_on_node2, 120, "a write accepted by node2")
        assert isinstance(new_write, float)
        failover = new_write - killed_at
        log.warning("kill -9 to first commit on the new primary: %.2f s", failover)
        wait(lambda: c.roles() == {n1.name: "Unpromoted", n2.name: "Promoted"}, 120,
             "old primary back as a standby")
        wait(lambda: streaming(c, 1) == "pgb_node1:sync", 120, "old primary streams from the new one")
        rejoin = time.time() - killed_at
        wait(lambda: vip_node(c) == n2.name, 30, "the virtual IP follows the primary to node2")
        assert c.psql_at(VIP, "SELECT pg_is_in_recovery()") == "f"
        time.sleep(1)
    finally:
        stop_writer(writer)

    acked, unknown = parse(out.read_text())
    assert len(acked) > 200
    on_new = {int(x) for x in c.psql(n2, "SELECT id FROM writes").split()}
    assert acked <= on_new, f"lost commits: {sorted(acked - on_new)[:20]}"
    assert on_new - acked <= unknown
    wait(lambda: c.psql(n1, "SELECT count(*) FROM writes") == str(len(on_new)), 30, "old primary caught up")
    on_old = {int(x) for x in c.psql(n1, "SELECT id FROM writes").split()}
    assert acked <= on_old
    print(f"failover (kill -9 -> first commit on the new primary): {failover:.2f} s; "
          f"old primary streaming again after {rejoin:.1f} s; {len(acked)} commits kept")
