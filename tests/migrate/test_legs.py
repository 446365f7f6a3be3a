"""The two directions of the switchover, pure: which records belong to which, which transitions they make."""

from __future__ import annotations

from pgbaton.config import parse_config
from pgbaton.migrate.lifecycle import Event, State
from pgbaton.migrate.streams import FWD, REV, SWITCHED, SWITCHED_BACK, backward, forward
from pgbaton.migrate.switch_exec import _leg_records

CFG = parse_config({"target": {"port": 5433}, "migrations": {"m": {
    "source": {"port": 5001}, "target": {"port": 5002}, "databases": ["a"]}}}).migration("m")


def test_legs_mirror_each_other() -> None:
    f, b = forward(CFG), backward(CFG)
    assert (f.old.cluster.port, f.new.cluster.port, f.stream, f.back) == (5001, 5002, FWD, REV)
    assert (b.old.cluster.port, b.new.cluster.port, b.stream, b.back) == (5002, 5001, REV, FWD)
    assert (f.state_after, b.state_after) == (SWITCHED, SWITCHED_BACK)
    assert (f.begin, f.done, f.undo, f.during) == (Event.begin_switchover, Event.switched_over,
                                                   Event.undo_switchover, State.switching_over)
    assert (b.begin, b.done, b.undo, b.during) == (Event.begin_switchback, Event.switched_back,
                                                   Event.undo_switchback, State.switching_back)


def test_each_leg_reads_only_its_records() -> None:
    steps = {"pause_clients": ("done", None), "back:pause_clients": ("started", None)}
    assert _leg_records(steps, forward(CFG)) == {"pause_clients": ("done", None)}
    assert _leg_records(steps, backward(CFG)) == {"pause_clients": ("started", None)}
