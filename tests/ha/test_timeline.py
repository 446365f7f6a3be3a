"""The failover timeline read from a cluster's logs (tests/ha/timeline.py), on sample lines."""

from __future__ import annotations

import time
from pathlib import Path

from tests.ha.timeline import Logs, phases, render


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_steps_from_the_logs_of_both_nodes_and_the_writer(tmp_path: Path) -> None:
    kill = time.mktime(time.strptime("2026-12-02 09:34:14", "%Y-%m-%d %H:%M:%S")) + 0.856
    _write(tmp_path / "writer.out", f"ok 202 10.0.0.1 {kill - 0.1:.3f} 2\nunknown 203 {kill:.3f} gone\n"
                                    f"ok 204 10.0.0.2 {kill + 3.345:.3f} 3\n")
    _write(tmp_path / "node1" / "agent.log",
           "2026-12-02 09:34:16,851 pgbaton-ocf[1] pgsql monitor: WARNING monitor: the primary crashed; waiting\n")
    _write(tmp_path / "node1" / "pacemaker.log",
           "Dec 02 09:34:16.909 pgb-node1 pacemaker-controld  [1] (do_lrm_rsc_op) \tnotice: Requesting local "
           "execution of demote operation for pgsql on pgb-node1 | x\n"
           "Dec 02 09:34:17.309 pgb-node1 pacemaker-controld  [1] (log_executor_event) \tnotice: Result of demote "
           "operation for pgsql on pgb-node1: ok | x\n"
           "Dec 02 09:34:17.310 pgb-node1 pacemaker-execd  [1] (log_op_output) \tinfo: output [ Requesting local "
           "execution of promote operation for pgsql on ]\n")
    _write(tmp_path / "node2" / "pacemaker.log",
           "Dec 02 09:34:17.777 pgb-node2 pacemaker-controld  [2] (do_lrm_rsc_op) \tnotice: Requesting local "
           "execution of promote operation for pgsql on pgb-node2 | x\n"
           "Dec 02 09:34:18.377 pgb-node2 pacemaker-controld  [2] (log_executor_event) \tnotice: Result of promote "
           "operation for pgsql on pgb-node2: ok | x\n")
    _write(tmp_path / "node2" / "pg" / "data.log",
           "2026-12-02 09:34:15.500 UTC [4] LOG:  started streaming WAL from primary at 0/2000000 on timeline 2\n"
           "2026-12-02 09:34:18.129 UTC [3] LOG:  selected new timeline ID: 3\n"
           "2026-12-02 09:34:18.681 UTC [4] LOG:  started streaming WAL from primary at 0/3000000 on timeline 3\n")
    logs = Logs(tmp_path)
    events = logs.read()
    assert logs.read() == events                     # read on from where it stopped: nothing new
    found = phases(events, kill, kill + 10, old_timeline=2)
    assert found["monitor_failed"] == 2.0
    assert found["demote_start"] == 2.05 and found["demote_done"] == 2.45
    assert found["promote_start"] == 2.92 and found["promote_done"] == 3.52
    assert found["first_commit"] == 3.35
    if time.gmtime(kill).tm_hour == time.localtime(kill).tm_hour:
        assert found["pg_promoted"] == 3.27          # the server log is in UTC, the others in local time
        assert found["streaming"] == 3.83            # after the promotion, not the stream of before
    text = render(events, kill, kill + 10)
    assert "log_op_output" not in text and text.count("demote operation") == 2
