"""Switchover decisions and sequence moves: pure, no servers."""

from __future__ import annotations

from pgbaton.migrate.model import DbState, DbStatus
from pgbaton.migrate.switchover import (
    ORDER,
    Action,
    SeqValue,
    Undo,
    may_switch,
    resume_from,
    rollback,
    sequence_updates,
)

READY = DbStatus("a", DbState.streaming, 3, 3, 120, 0.0)


def test_all_ready_may_switch() -> None:
    d = may_switch([READY, DbStatus("b", DbState.streaming, 1, 1, 0, 0.0)], ["a", "b"])
    assert d.proceed and d.reasons == ()


def test_one_database_not_ready_stops_all_with_reasons() -> None:
    d = may_switch([READY, DbStatus("b", DbState.copying, 1, 2, 10, None)], ["a", "b"])
    assert not d.proceed
    assert d.reasons == ("b: copying, not streaming", "b: 1/2 tables synced")


def test_missing_errors_and_lag_are_refused() -> None:
    d = may_switch([DbStatus("a", DbState.streaming, 3, 3, 10**9, 4.0, errors=["2 apply error(s)"])], ["a", "b"])
    assert not d.proceed
    assert any("lag" in r for r in d.reasons) and any("apply error" in r for r in d.reasons)
    assert "b: no status" in d.reasons
    assert not may_switch([DbStatus("a", DbState.streaming, 0, 0, 0, 0.0)], ["a"]).proceed


def test_order_follows_the_issue() -> None:
    assert ORDER.index(Action.pause_clients) < ORDER.index(Action.freeze_source) < ORDER.index(
        Action.read_source_lsn) < ORDER.index(Action.wait_applied) < ORDER.index(Action.copy_sequences) < ORDER.index(
        Action.create_reverse) < ORDER.index(Action.point_switcher) < ORDER.index(Action.retire_forward) < ORDER.index(
        Action.open_reverse)  # the forward stream stops after RESUME but before the stream back starts


def test_rollback_undoes_newest_first_and_nothing_after_the_switch() -> None:
    done = [Action.pause_clients, Action.freeze_source, Action.read_source_lsn, Action.wait_applied,
            Action.copy_sequences, Action.create_reverse]
    assert rollback(done) == [Undo.drop_reverse, Undo.unfreeze_source, Undo.resume_clients]
    assert rollback([Action.pause_clients]) == [Undo.resume_clients]
    assert rollback([*ORDER[:-1]]) == []


def test_rerun_resumes_after_the_recorded_steps() -> None:
    assert resume_from([Action.pause_clients, Action.freeze_source])[0] is Action.read_source_lsn
    assert resume_from(list(ORDER)) == []


def test_sequences_only_move_forward() -> None:
    src = {"s.a": SeqValue(100), "s.b": SeqValue(5), "s.c": SeqValue(None), "s.d": SeqValue(-50, -1),
           "s.gone": SeqValue(3)}
    tgt = {"s.a": SeqValue(None), "s.b": SeqValue(9), "s.c": SeqValue(None), "s.d": SeqValue(-10, -1)}
    updates, missing = sequence_updates(src, tgt)
    assert updates == {"s.a": 100, "s.d": -50}
    assert missing == ["s.gone"]
