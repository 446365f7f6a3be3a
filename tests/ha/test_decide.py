"""Unit tests of the HA decisions: no server, no mocks, only values."""

from __future__ import annotations

import pytest

from pgbaton.ha import decide
from pgbaton.ha.decide import StartPlan
from pgbaton.ha.model import (
    Candidate,
    ClusterState,
    ControlData,
    DataDir,
    LocalState,
    Position,
    PrimaryView,
    PromotionFacts,
    RebuildStatus,
    ReplicaStat,
    Role,
    SyncMode,
    TimelineFork,
    format_lsn,
    parse_lsn,
)

SYSID = "7300000000000000001"


def control(state: ClusterState = ClusterState.SHUT_DOWN_IN_RECOVERY, tli: int = 1, lsn: str = "0/3000000",
            min_lsn: str = "0/0", sysid: str = SYSID) -> ControlData:
    return ControlData(state, sysid, parse_lsn(lsn), tli, parse_lsn(min_lsn), tli if min_lsn != "0/0" else 0)


def stopped(ctl: ControlData | None = None) -> LocalState:
    return LocalState(DataDir.USABLE, running=False, control=ctl or control())


def primary(tli: int = 1, lsn: str = "0/5000000", forks: tuple[tuple[int, str], ...] = ()) -> PrimaryView:
    return PrimaryView(SYSID, tli, parse_lsn(lsn), tuple(TimelineFork(t, parse_lsn(s)) for t, s in forks))


# --- LSN and positions ------------------------------------------------------------------

def test_lsn_round_trip() -> None:
    assert parse_lsn("0/3000060") == 0x3000060
    assert parse_lsn("1/0") == 1 << 32
    assert format_lsn(parse_lsn("16/B374D848")) == "16/B374D848"
    with pytest.raises(ValueError):
        parse_lsn("nope")


def test_position_orders_timeline_before_lsn() -> None:
    assert Position(2, 10) > Position(1, 1000)
    assert Position(1, 11) > Position(1, 10)
    assert Position.decode(Position(3, 0x5000028).encode()) == Position(3, 0x5000028)


def test_end_position_uses_min_recovery_point_when_further() -> None:
    ctl = control(lsn="0/3000000", min_lsn="0/3500000")
    assert ctl.end_position == Position(1, parse_lsn("0/3500000"))
    assert control(lsn="0/3000000").end_position == Position(1, parse_lsn("0/3000000"))


# --- classify ----------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("local", "role"),
    [
        (LocalState(DataDir.USABLE, running=True, in_recovery=True), Role.STANDBY),
        (LocalState(DataDir.USABLE, running=True, in_recovery=False), Role.PRIMARY),
        (stopped(control(ClusterState.SHUT_DOWN)), Role.STOPPED),
        (stopped(control(ClusterState.SHUT_DOWN_IN_RECOVERY)), Role.STOPPED),
        (stopped(control(ClusterState.IN_PRODUCTION)), Role.CRASHED_PRIMARY),
        (stopped(control(ClusterState.ARCHIVE_RECOVERY)), Role.CRASHED_STANDBY),
        (LocalState(DataDir.EMPTY, running=False), Role.UNUSABLE),
        (LocalState(DataDir.BROKEN, running=False), Role.UNUSABLE),
        (LocalState(DataDir.EMPTY, running=False, rebuild=RebuildStatus.RUNNING), Role.REBUILDING),
        (LocalState(DataDir.EMPTY, running=False, rebuild=RebuildStatus.FAILED), Role.REBUILD_FAILED),
    ],
)
def test_classify(local: LocalState, role: Role) -> None:
    assert decide.classify(local) is role


# --- start / rewind ------------------------------------------------------------------------

def test_start_plain_standby_when_on_primary_history() -> None:
    assert decide.plan_start(stopped(), primary()) is StartPlan.START_STANDBY


def test_start_without_primary_still_starts_as_standby() -> None:
    assert decide.plan_start(stopped(), None) is StartPlan.START_STANDBY


def test_start_empty_dir_rebuilds_only_with_a_source() -> None:
    empty = LocalState(DataDir.EMPTY, running=False)
    assert decide.plan_start(empty, primary()) is StartPlan.REBUILD
    assert decide.plan_start(empty, None) is StartPlan.NO_SOURCE
    broken = LocalState(DataDir.BROKEN, running=False)
    assert decide.plan_start(broken, primary()) is StartPlan.REBUILD


def test_start_other_system_rebuilds() -> None:
    assert decide.plan_start(stopped(control(sysid="999")), primary()) is StartPlan.REBUILD


def test_start_running_instances() -> None:
    assert decide.plan_start(LocalState(DataDir.USABLE, True, True), primary()) is StartPlan.ALREADY_STANDBY
    assert decide.plan_start(LocalState(DataDir.USABLE, True, False), primary()) is StartPlan.REFUSE_PRIMARY


def test_start_waits_for_running_rebuild_and_redoes_failed_one() -> None:
    assert decide.plan_start(LocalState(DataDir.EMPTY, False, rebuild=RebuildStatus.RUNNING), primary()) \
        is StartPlan.WAIT_REBUILD
    failed = LocalState(DataDir.USABLE, False, control=control(), rebuild=RebuildStatus.FAILED)
    assert decide.plan_start(failed, primary()) is StartPlan.REBUILD


def test_old_primary_shut_down_before_the_fork_needs_no_rewind() -> None:
    # clean switchover: the standby replayed the shutdown checkpoint, then forked after it
    old = control(ClusterState.SHUT_DOWN, tli=1, lsn="0/4000028")
    new = primary(tli=2, lsn="0/5000000", forks=((1, "0/40000A0"),))
    assert not decide.diverged(old, new)
    assert decide.plan_start(stopped(old), new) is StartPlan.START_STANDBY


def test_old_primary_ahead_of_the_fork_is_rewound() -> None:
    old = control(ClusterState.SHUT_DOWN, tli=1, lsn="0/6000028")
    new = primary(tli=2, lsn="0/7000000", forks=((1, "0/40000A0"),))
    assert decide.diverged(old, new)
    assert decide.plan_start(stopped(old), new) is StartPlan.REWIND


def test_crashed_primary_is_always_rewound_after_a_fork() -> None:
    # after kill -9 its WAL may run past the last checkpoint: the control file cannot tell
    old = control(ClusterState.IN_PRODUCTION, tli=1, lsn="0/3000028")
    new = primary(tli=2, forks=((1, "0/40000A0"),))
    assert decide.plan_start(stopped(old), new) is StartPlan.REWIND


def test_standby_on_an_older_timeline_is_checked_by_rewind() -> None:
    # its WAL on disk may run past the restart point the control file shows
    new = primary(tli=2, forks=((1, "0/40000A0"),))
    for state in (ClusterState.ARCHIVE_RECOVERY, ClusterState.SHUT_DOWN_IN_RECOVERY):
        old = control(state, tli=1, lsn="0/3000028", min_lsn="0/3100000")
        assert decide.plan_start(stopped(old), new) is StartPlan.REWIND


def test_standby_on_the_primary_timeline_just_starts() -> None:
    new = primary(tli=2, lsn="0/6000000", forks=((1, "0/40000A0"),))
    old = control(ClusterState.SHUT_DOWN_IN_RECOVERY, tli=2, lsn="0/5000028")
    assert decide.plan_start(stopped(old), new) is StartPlan.START_STANDBY


def test_timeline_unknown_to_the_primary_or_newer_diverges() -> None:
    new = primary(tli=3, forks=((1, "0/40000A0"), (2, "0/50000A0")))
    assert decide.diverged(control(tli=4), new)
    foreign = primary(tli=3, forks=((1, "0/40000A0"),))   # timeline 2 is not in its history
    assert decide.diverged(control(tli=2, lsn="0/4500000"), foreign)


def test_same_timeline_ahead_of_primary_diverges() -> None:
    assert decide.diverged(control(tli=1, lsn="0/9000000"), primary(tli=1, lsn="0/5000000"))
    assert not decide.diverged(control(tli=1, lsn="0/4000000"), primary(tli=1, lsn="0/5000000"))


def test_failed_rewind_falls_back_to_rebuild() -> None:
    assert decide.after_failed_rewind(primary()) is StartPlan.REBUILD
    assert decide.after_failed_rewind(None) is StartPlan.NO_SOURCE


# --- synchronous replication -----------------------------------------------------------------

def rep(name: str, state: str = "streaming", sync: str = "sync") -> ReplicaStat:
    return ReplicaStat(name, state, sync, None)


def test_sync_only_towards_streaming_standbys() -> None:
    known = ["b", "c", 'b"x']
    assert decide.sync_standby_names(SyncMode.SYNC, [rep("b")], known) == 'FIRST 1 ("b")'
    assert decide.sync_standby_names(SyncMode.SYNC, [rep("b", state="catchup")], known) == ""
    assert decide.sync_standby_names(SyncMode.SYNC, [], known) == ""
    assert decide.sync_standby_names(SyncMode.ASYNC, [rep("b")], known) == ""
    assert decide.sync_standby_names(SyncMode.SYNC, [rep("c"), rep('b"x')], known) == 'FIRST 1 ("b""x", "c")'
    # a pg_basebackup streaming WAL is no standby of the cluster
    assert decide.sync_standby_names(SyncMode.SYNC, [rep("pg_basebackup")], known) == ""


def test_scores_from_the_primary() -> None:
    reps = [rep("b"), rep("c", sync="potential")]
    assert decide.standby_scores(SyncMode.SYNC, reps, ["b", "c", "d"]) == {
        "b": decide.SCORE_IN_SYNC, "c": decide.SCORE_NEVER, "d": decide.SCORE_NEVER}
    assert decide.standby_scores(SyncMode.SYNC, reps, ["c", "d"], forced=True) == {
        "c": decide.SCORE_FORCED, "d": decide.SCORE_FORCED}
    assert decide.standby_scores(SyncMode.ASYNC, [rep("b", sync="async")], ["b"]) == {
        "b": decide.SCORE_STREAMING_ASYNC}


def test_in_sync() -> None:
    assert decide.in_sync(SyncMode.SYNC, rep("b"))
    assert not decide.in_sync(SyncMode.SYNC, rep("b", sync="async"))
    assert not decide.in_sync(SyncMode.SYNC, rep("b", state="catchup"))
    assert not decide.in_sync(SyncMode.ASYNC, rep("b"))
    assert not decide.in_sync(SyncMode.SYNC, None)


# --- promotion ------------------------------------------------------------------------------

MINE = Position(1, 1000)


def me(pos: Position | None = MINE, holds_all: bool | None = None, score: int | None = None) -> Candidate:
    return Candidate("a", pos, holds_all, score)


def facts(**kw: object) -> PromotionFacts:
    base: dict[str, object] = {"me": me()}
    base.update(kw)
    return PromotionFacts(**base)  # type: ignore[arg-type]


def test_promote_a_node_recorded_in_sync() -> None:
    assert decide.may_promote(facts(me=me(holds_all=True))).allowed


def test_refuse_out_of_sync_unless_forced() -> None:
    verdict = decide.may_promote(facts(me=me(holds_all=False)))
    assert not verdict.allowed and "sync" in verdict.reason
    assert decide.may_promote(facts(me=me(holds_all=False), forced=True)).allowed


def test_more_advanced_node_wins_even_when_forced() -> None:
    others = (Candidate("b", Position(1, 2000), True), Candidate("c", None))
    verdict = decide.may_promote(facts(me=me(holds_all=True), others=others, forced=True))
    assert not verdict.allowed and verdict.prefer == "b"
    # timeline first (without a history, the newer timeline holds more)
    verdict = decide.may_promote(facts(me=me(Position(2, 10), True), others=others))
    assert verdict.allowed


def test_the_prepared_synchronous_standby_does_not_wait_for_the_crashed_primary() -> None:
    # live failover: the crashed primary came back as a standby with WAL nobody saw acknowledged
    crashed = (Candidate("b", Position(1, 5000), True, decide.SCORE_NEVER),)
    prepared = me(holds_all=True, score=decide.SCORE_IN_SYNC)
    assert decide.may_promote(facts(me=prepared, others=crashed)).allowed
    # after a full restart (no scores any more) the most advanced node goes first
    verdict = decide.may_promote(facts(me=me(holds_all=True, score=decide.SCORE_ELECTED), others=crashed))
    assert not verdict.allowed and verdict.prefer == "b"


def test_full_crash_with_async_commits_elects_the_old_primary() -> None:
    # the standby was down while the primary acknowledged commits alone, then both crashed
    old_primary = Candidate("b", Position(1, 9000), True)
    standby = me(Position(1, 1000), False)
    verdict = decide.may_promote(facts(me=standby, others=(old_primary,)))
    assert not verdict.allowed
    assert decide.lone_standby_score(facts(me=standby, others=(old_primary,))) == decide.SCORE_NEVER
    # while the old primary is away, it may come back with those commits: no promotion
    away = Candidate("b", None, True)
    verdict = decide.may_promote(facts(me=standby, others=(away,)))
    assert not verdict.allowed and "has not reported" in verdict.reason
    # unless the operator accepts the loss
    assert decide.may_promote(facts(me=standby, others=(away,), forced=True)).allowed
    # the old primary itself is elected and may be promoted
    as_b = PromotionFacts(me=old_primary, others=(Candidate("a", Position(1, 1000), False),))
    assert decide.lone_standby_score(as_b) == decide.SCORE_ELECTED
    assert decide.may_promote(as_b).allowed


def test_a_node_at_the_old_primary_position_is_eligible_without_a_record() -> None:
    # planned switch back right after a switch: the record of the new standby may lag behind
    old_primary = Candidate("b", Position(2, 0x5000028), True)
    assert decide.may_promote(facts(me=me(Position(2, 0x5000028), False), others=(old_primary,))).allowed
    assert not decide.may_promote(facts(me=me(Position(2, 0x5000000), False), others=(old_primary,))).allowed


def test_positions_on_different_timelines_compare_through_the_history() -> None:
    fork = (TimelineFork(1, 0x4000000),)
    newer = Position(2, 0x3800000, fork)          # timeline 2, but before the old timeline's end
    assert Position(1, 0x3900000) > newer         # same history, more WAL
    assert Position(1, 0x3800000).compare(newer) == 0
    assert Position(1, 0x3000000) < newer
    assert Position(1, 0x4100000) < newer         # past the fork: diverged, the newer timeline wins
    assert Position(2, 10) > Position(1, 1000)    # no history known: timeline first
    assert Position.decode(newer.encode()) == newer and Position.decode(newer.encode()).forks == fork


def test_equal_positions_do_not_block() -> None:
    verdict = decide.may_promote(facts(me=me(holds_all=True), others=(Candidate("b", Position(1, 1000), True),)))
    assert verdict.allowed


def test_bootstrap_without_records_promotes_the_most_advanced() -> None:
    assert decide.may_promote(facts()).allowed
    verdict = decide.may_promote(facts(others=(Candidate("b", Position(1, 2000)),)))
    assert not verdict.allowed and verdict.prefer == "b"
    assert decide.lone_standby_score(facts()) == decide.SCORE_ELECTED
    assert decide.lone_standby_score(facts(others=(Candidate("b", Position(1, 2000)),))) == decide.SCORE_CANDIDATE


def test_async_lag_limit() -> None:
    base = {"mode": SyncMode.ASYNC, "me": me(holds_all=False), "others": (Candidate("b", None, True),)}
    assert decide.may_promote(facts(last_primary_lsn=1500, max_lag=500, **base)).allowed
    verdict = decide.may_promote(facts(last_primary_lsn=1501, max_lag=500, **base))
    assert not verdict.allowed and "501 bytes" in verdict.reason
    # after a full restart the last primary position is gone: wait for the old primary
    assert not decide.may_promote(facts(last_primary_lsn=None, **base)).allowed
    assert decide.may_promote(facts(last_primary_lsn=9999, forced=True, **base)).allowed


def test_never_promote_beside_a_live_primary_or_without_position() -> None:
    assert not decide.may_promote(facts(me=me(holds_all=True), primary_alive=True, forced=True)).allowed
    assert not decide.may_promote(facts(me=me(None), forced=True)).allowed


def test_sync_plan_records_losses_before_and_gains_after() -> None:
    members = {"b": "node-b", "c": "node-c"}
    recorded = {"node-b": True, "node-c": None}
    plan = decide.plan_sync(SyncMode.SYNC, [rep("c", sync="sync")], members, recorded)
    assert plan.names == 'FIRST 1 ("c")' and plan.lose == ("node-b",) and plan.gain == ("node-c",)
    settled = decide.plan_sync(SyncMode.SYNC, [rep("c", sync="sync")], members, {"node-b": False, "node-c": True})
    assert settled.lose == () and settled.gain == ()
    # async mode: no standby ever holds every acknowledged commit
    assert decide.plan_sync(SyncMode.ASYNC, [rep("b", sync="async")], members, recorded).lose == ("node-b", "node-c")


# --- stream health ----------------------------------------------------------------------------

def test_stream_failures_need_threshold_in_a_row() -> None:
    h = decide.stream_health(False, True, 0, 3)
    assert h == decide.StreamHealth(True, 1)
    h = decide.stream_health(False, True, h.failures, 3)
    assert h.healthy and h.failures == 2
    assert decide.stream_health(False, True, h.failures, 3) == decide.StreamHealth(False, 3)
    assert decide.stream_health(True, True, 2, 3) == decide.StreamHealth(True, 0)
    # no primary to stream from is not the standby's fault
    assert decide.stream_health(False, False, 2, 3) == decide.StreamHealth(True, 0)


def test_parse_node_map() -> None:
    nodes = decide.parse_node_map("a=10.0.0.1 b=10.0.0.2:5433,c=host", 5432)
    assert nodes == {"a": ("10.0.0.1", 5432), "b": ("10.0.0.2", 5433), "c": ("host", 5432)}
    with pytest.raises(ValueError):
        decide.parse_node_map("oops", 5432)


def test_setting_problems_name_each_setting() -> None:
    good = {"wal_level": "replica", "hot_standby": "on", "wal_log_hints": "on", "full_page_writes": "on",
            "max_wal_senders": "10", "max_replication_slots": "10"}
    assert decide.setting_problems(good, checksums=False, nodes=2) == []
    assert decide.setting_problems({**good, "wal_log_hints": "off"}, checksums=True, nodes=2) == []
    bad = {"wal_level": "minimal", "hot_standby": "off", "wal_log_hints": "off", "full_page_writes": "off",
           "max_wal_senders": "2", "max_replication_slots": "0"}
    problems = decide.setting_problems(bad, checksums=False, nodes=2)
    assert [p.split()[0] for p in problems] == ["wal_level", "hot_standby", "wal_log_hints", "full_page_writes",
                                                "max_wal_senders", "max_replication_slots"]
    assert decide.setting_problems({}, checksums=False, nodes=2)[0] == "wal_level could not be read"


def test_enough_space_keeps_a_margin() -> None:
    gib = 1 << 30
    assert decide.enough_space(10 * gib, 12 * gib)
    assert not decide.enough_space(10 * gib, 10 * gib)


def test_standby_diverged_from_the_primary_history() -> None:
    new = primary(tli=3, lsn="0/9000000", forks=((1, "0/4000000"), (2, "0/6000000")))
    assert not decide.standby_diverged(Position(2, parse_lsn("0/5000000")), new)     # before the fork: follows
    assert not decide.standby_diverged(Position(2, parse_lsn("0/6000000")), new)
    assert decide.standby_diverged(Position(2, parse_lsn("0/6000100")), new)         # past it
    assert decide.standby_diverged(Position(4, 10), new)                             # a newer timeline
    assert not decide.standby_diverged(Position(3, parse_lsn("0/8000000")), new)
    assert decide.standby_diverged(Position(3, parse_lsn("0/9000100")), new)
    assert decide.standby_diverged(Position(5, 10), primary(tli=6, forks=((4, "0/1"),)))   # not in its history


def test_archive_problem() -> None:
    assert decide.archive_problem("off", 3, "x", 10.0, None) is None
    assert decide.archive_problem("on", 0, None, None, 5.0) is None
    assert decide.archive_problem("on", 2, "000000010000000000000003", 10.0, 5.0) == \
        "WAL archiving fails: 2 failure(s), last on 000000010000000000000003"
    assert decide.archive_problem("on", 2, "w", 10.0, 12.0) is None                   # archived since
