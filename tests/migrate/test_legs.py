"""The two directions of the switchover, pure: which records belong to which, when a leg may run."""

from __future__ import annotations

from pgbaton.config import parse_config
from pgbaton.migrate.streams import FWD, REV, SWITCHED, SWITCHED_BACK, backward, forward
from pgbaton.migrate.switch_exec import _leg_records, _refusal

CFG = parse_config({"target": {"port": 5433}, "migrations": {"m": {
    "source": {"port": 5001}, "target": {"port": 5002}, "databases": ["a"]}}}).migration("m")


def test_legs_mirror_each_other() -> None:
    f, b = forward(CFG), backward(CFG)
    assert (f.old.cluster.port, f.new.cluster.port, f.stream, f.back) == (5001, 5002, FWD, REV)
    assert (b.old.cluster.port, b.new.cluster.port, b.stream, b.back) == (5002, 5001, REV, FWD)
    assert (f.state_after, b.state_after) == (SWITCHED, SWITCHED_BACK)


def test_each_leg_reads_only_its_records() -> None:
    steps = {"pause_clients": ("done", None), "back:pause_clients": ("started", None)}
    assert _leg_records(steps, forward(CFG)) == {"pause_clients": ("done", None)}
    assert _leg_records(steps, backward(CFG)) == {"pause_clients": ("started", None)}


def test_when_a_leg_may_run() -> None:
    f, b = forward(CFG), backward(CFG)
    assert _refusal(f, "streaming", {}) is None
    assert _refusal(f, SWITCHED_BACK, {}) is None  # switch over again after a switchback
    assert _refusal(f, SWITCHED, {}) == (True, "already done (switched)")
    assert _refusal(b, SWITCHED, {}) is None
    assert _refusal(b, SWITCHED_BACK, {}) == (True, "already done (switched_back)")
    refused = _refusal(b, "streaming", {})
    assert refused is not None and not refused[0] and "not switched over" in refused[1]
    refused = _refusal(f, SWITCHED_BACK, {"back:pause_clients": ("started", None)})
    assert refused is not None and not refused[0] and "interrupted switchback" in refused[1]
