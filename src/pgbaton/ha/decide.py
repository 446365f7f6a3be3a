"""Every high-availability decision, as pure functions over observed state.

Nothing here runs a command or opens a connection: the OCF actions observe, call one of
these functions and carry out what it returns.  Each function has its own unit tests.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pgbaton.ha.model import (
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
)

# promotion scores (``crm_attribute --promotion``): higher wins, negative never promoted
SCORE_PRIMARY = 1001
SCORE_IN_SYNC = 1000           # set by the primary: a synchronous standby
SCORE_STREAMING_ASYNC = 900    # set by the primary: a streaming standby in async mode
SCORE_ELECTED = 100            # no primary: the most advanced node that may be promoted
SCORE_FORCED = 10
SCORE_CANDIDATE = 1            # no primary: may be promoted, but another node is more advanced
SCORE_NEVER = -1


def classify(local: LocalState) -> Role:
    """The role of the local instance, from one observation."""
    if local.rebuild is RebuildStatus.RUNNING:
        return Role.REBUILDING
    if local.rebuild is RebuildStatus.FAILED:
        return Role.REBUILD_FAILED
    if local.running:
        return Role.STANDBY if local.in_recovery else Role.PRIMARY
    if local.datadir is not DataDir.USABLE or local.control is None:
        return Role.UNUSABLE
    state = local.control.state
    if state in (ClusterState.SHUT_DOWN, ClusterState.SHUT_DOWN_IN_RECOVERY):
        return Role.STOPPED
    if state in (ClusterState.IN_PRODUCTION, ClusterState.SHUTTING_DOWN):
        return Role.CRASHED_PRIMARY
    return Role.CRASHED_STANDBY


class StartPlan(enum.Enum):
    ALREADY_STANDBY = "already-standby"
    WAIT_REBUILD = "wait-rebuild"        # a basebackup worker is already at work
    START_STANDBY = "start-standby"
    REWIND = "rewind"                    # pg_rewind from the primary, then start as standby
    REBUILD = "rebuild"                  # slot + pg_basebackup, old data kept aside
    REFUSE_PRIMARY = "refuse-primary"    # it runs as a primary outside the cluster's knowledge
    NO_SOURCE = "no-source"              # must be rebuilt, but no primary to copy from


def diverged(control: ControlData, primary: PrimaryView) -> bool:
    """Whether this data directory may hold WAL that the primary's history does not contain.

    Only a proven-safe case says no: a cleanly shut down instance that ends before the
    point where the primary left its timeline.  Anything else is handed to pg_rewind,
    which reads the local WAL and says itself when no rewind is needed.
    """
    mine = control.end_position
    if mine.timeline > primary.timeline:
        return True
    if mine.timeline == primary.timeline:
        return mine.lsn > primary.lsn
    forks = {fork.timeline: fork.switch_lsn for fork in primary.history}
    switch = forks.get(mine.timeline)
    if switch is None or not control.clean:
        return True
    if control.state is ClusterState.SHUT_DOWN_IN_RECOVERY:
        # a standby may hold received WAL beyond its restart point: let pg_rewind look
        return True
    return mine.lsn >= switch


def standby_diverged(mine: Position, primary: PrimaryView) -> bool:
    """Whether a running standby at ``mine`` holds WAL the primary's history does not: it can
    never stream from that primary again without a rewind."""
    if mine.timeline > primary.timeline:
        return True
    if mine.timeline == primary.timeline:
        return mine.lsn > primary.lsn
    switch = {fork.timeline: fork.switch_lsn for fork in primary.history}.get(mine.timeline)
    return switch is None or mine.lsn > switch


def plan_start(local: LocalState, primary: PrimaryView | None) -> StartPlan:
    """How ``start`` brings the local instance up as a standby."""
    if local.rebuild is RebuildStatus.RUNNING:
        return StartPlan.WAIT_REBUILD
    if local.running:
        return StartPlan.ALREADY_STANDBY if local.in_recovery else StartPlan.REFUSE_PRIMARY
    if local.datadir is not DataDir.USABLE or local.control is None or local.rebuild is RebuildStatus.FAILED:
        return StartPlan.REBUILD if primary is not None else StartPlan.NO_SOURCE
    if primary is None:
        return StartPlan.START_STANDBY
    if primary.system_id != local.control.system_id:
        return StartPlan.REBUILD
    if diverged(local.control, primary):
        return StartPlan.REWIND
    return StartPlan.START_STANDBY


def after_failed_rewind(primary: PrimaryView | None) -> StartPlan:
    """pg_rewind failed: copy everything again, or give up when there is nothing to copy."""
    return StartPlan.REBUILD if primary is not None else StartPlan.NO_SOURCE


def sync_standby_names(mode: SyncMode, replicas: Iterable[ReplicaStat], known: Iterable[str]) -> str:
    """``synchronous_standby_names`` the primary should have now.

    Synchronous only towards cluster standbys (``known`` application names) that stream
    right now, so a lost standby never blocks the primary's writes, and a pg_basebackup
    or other client streaming WAL never counts as a standby.
    """
    if mode is SyncMode.ASYNC:
        return ""
    members = set(known)
    names = sorted({r.application_name for r in replicas if r.state == "streaming" and r.application_name in members})
    if not names:
        return ""
    quoted = ", ".join('"' + name.replace('"', '""') + '"' for name in names)
    return f"FIRST 1 ({quoted})"


def standby_scores(
    mode: SyncMode, replicas: Iterable[ReplicaStat], known: Iterable[str], forced: bool = False
) -> dict[str, int]:
    """Promotion score of every known standby (by application name), set by the primary."""
    streaming = {r.application_name: r for r in replicas if r.state == "streaming"}
    scores: dict[str, int] = {}
    for name in known:
        replica = streaming.get(name)
        if replica is None:
            scores[name] = SCORE_FORCED if forced else SCORE_NEVER
        elif mode is SyncMode.ASYNC:
            scores[name] = SCORE_STREAMING_ASYNC
        elif replica.sync_state == "sync" or replica.sync_state == "quorum":
            scores[name] = SCORE_IN_SYNC
        else:
            scores[name] = SCORE_FORCED if forced else SCORE_NEVER
    return scores


def in_sync(mode: SyncMode, replica: ReplicaStat | None) -> bool:
    """Whether a standby holds every transaction the primary reported committed."""
    if replica is None or replica.state != "streaming":
        return False
    return mode is SyncMode.SYNC and replica.sync_state in ("sync", "quorum")


@dataclass(frozen=True)
class SyncPlan:
    """What the primary's monitor changes, in this order.

    ``lose`` are recorded as not holding every acknowledged commit *before*
    synchronous_standby_names changes (a failover in between would otherwise promote a
    standby that missed asynchronous commits); ``gain`` are recorded after, once they are
    synchronous standbys.
    """

    names: str
    lose: tuple[str, ...]
    gain: tuple[str, ...]


def plan_sync(mode: SyncMode, replicas: Iterable[ReplicaStat], members: Mapping[str, str],
              recorded: Mapping[str, bool | None]) -> SyncPlan:
    """The sync names and durable records the primary needs; ``members``: application name -> node."""
    replicas = list(replicas)
    by_name = {r.application_name: r for r in replicas}
    holds = {node: in_sync(mode, by_name.get(app)) for app, node in members.items()}
    return SyncPlan(
        names=sync_standby_names(mode, replicas, members),
        lose=tuple(sorted(n for n, v in holds.items() if not v and recorded.get(n) is not False)),
        gain=tuple(sorted(n for n, v in holds.items() if v and recorded.get(n) is not True)),
    )


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    reason: str
    prefer: str | None = None   # a better node to promote instead


def eligible(facts: PromotionFacts) -> Verdict:
    """Whether promoting this node can lose no acknowledged commit (ignoring more advanced rivals).

    It can when the cluster never had a primary, when the node is recorded as holding every
    acknowledged commit (it was the primary, or a synchronous standby), or when it is at
    least as advanced as every node so recorded (all of them have reported a position: a
    planned switchover, or a full restart with the old primary back).  In async mode a
    standby within ``max_lag`` of the last primary position is eligible too.  A node that
    may hold more than this one and is not back yet blocks it: only ``force_promote``
    overrides that.
    """
    mine = facts.me.position
    if mine is None:
        return Verdict(False, "own WAL position unknown")
    if facts.forced:
        return Verdict(True, "forced (force_promote)")
    if not facts.history:
        return Verdict(True, "no earlier primary on record: the most advanced node starts the cluster")
    if facts.me.holds_all:
        return Verdict(True, "recorded as holding every acknowledged commit")
    holders = [c for c in facts.others if c.holds_all]
    if holders and all(c.position is not None and mine >= c.position for c in holders):
        return Verdict(True, f"at least as advanced as {', '.join(c.node for c in holders)}, "
                             "which held every acknowledged commit")
    if facts.mode is SyncMode.ASYNC and facts.last_primary_lsn is not None:
        lag = facts.last_primary_lsn - mine.lsn
        if lag > facts.max_lag:
            return Verdict(False, f"{lag} bytes behind the last primary position (max_lag {facts.max_lag})")
        return Verdict(True, f"asynchronous, {max(lag, 0)} bytes behind")
    missing = [c.node for c in holders if c.position is None]
    if missing:
        return Verdict(False, f"not in sync, and {', '.join(missing)} (which may hold more) has not reported "
                              "its position (set force_promote to accept data loss)")
    return Verdict(False, "not in sync with the last primary, and behind a node that was "
                          "(set force_promote to accept data loss)")


def may_promote(facts: PromotionFacts) -> Verdict:
    """Whether this standby may become the primary now.

    Besides :func:`eligible`: never beside a running primary, and a more advanced node that
    reported its position goes first (it is eligible too, holding more).  The exception is
    the failover the last primary prepared: a synchronous standby still holding the score
    the primary gave it does not wait for the crashed primary, whose extra WAL no client
    saw acknowledged.
    """
    if facts.primary_alive:
        return Verdict(False, "another node is a running primary")
    verdict = eligible(facts)
    if not verdict.allowed:
        return verdict
    mine = facts.me.position
    assert mine is not None
    prepared = bool(facts.me.holds_all) and facts.me.score == SCORE_IN_SYNC
    ahead = [c for c in facts.others if c.position is not None and c.position > mine]
    if ahead and not prepared:
        best = ahead[0]
        for c in ahead[1:]:
            if c.position is not None and best.position is not None and c.position > best.position:
                best = c
        assert best.position is not None
        return Verdict(False, f"{best.node} is more advanced ({best.position.encode()} > {mine.encode()})",
                       best.node)
    return verdict


def lone_standby_score(facts: PromotionFacts) -> int:
    """The promotion score a standby gives itself while no primary runs.

    Not eligible: never.  The synchronous standby the last primary chose keeps its score.
    Otherwise the most advanced of the nodes that reported a position is elected, the
    others stay candidates.
    """
    if not eligible(facts).allowed:
        return SCORE_NEVER
    if facts.me.holds_all and facts.me.score == SCORE_IN_SYNC:
        return SCORE_IN_SYNC
    mine = facts.me.position
    assert mine is not None
    if any(c.position is not None and c.position > mine for c in facts.others):
        return SCORE_CANDIDATE
    return SCORE_ELECTED


@dataclass(frozen=True)
class StreamHealth:
    healthy: bool
    failures: int


def stream_health(receiving: bool, primary_reachable: bool, failures: int, threshold: int) -> StreamHealth:
    """Count monitors in a row where a primary exists but this standby does not stream from it."""
    if receiving or not primary_reachable:
        return StreamHealth(True, 0)
    failures += 1
    return StreamHealth(failures < threshold, failures)


# settings the agent reads with ``postgres -C`` before it starts an instance
CHECKED_SETTINGS = ("wal_level", "hot_standby", "wal_log_hints", "full_page_writes", "max_wal_senders",
                    "max_replication_slots")


def setting_problems(settings: Mapping[str, str | None], checksums: bool, nodes: int) -> list[str]:
    """What in the server's configuration stops the agent from doing its job, one line per setting.

    ``nodes`` is the number of cluster nodes: the primary needs a WAL sender and a slot per
    other node, and two more WAL senders for a pg_basebackup with streamed WAL.
    """
    problems: list[str] = []

    def value(name: str) -> str | None:
        raw = settings.get(name)
        if raw is None:
            problems.append(f"{name} could not be read")
        return raw

    def number(name: str) -> int | None:
        raw = value(name)
        try:
            return int(raw) if raw is not None else None
        except ValueError:
            problems.append(f"{name} = {raw!r} is not a number")
            return None

    level = value("wal_level")
    if level is not None and level not in ("replica", "logical"):
        problems.append(f"wal_level = {level}: replica or logical is needed for standbys")
    hot = value("hot_standby")
    if hot is not None and hot != "on":
        problems.append("hot_standby = off: the agent watches a standby through SQL, it must be on")
    hints = value("wal_log_hints")
    if hints is not None and hints != "on" and not checksums:
        problems.append("wal_log_hints = off and no data checksums: pg_rewind needs one of them")
    fpw = value("full_page_writes")
    if fpw is not None and fpw != "on":
        problems.append("full_page_writes = off: pg_rewind and crash safety need it on")
    senders, slots = number("max_wal_senders"), number("max_replication_slots")
    peers = max(nodes - 1, 1)
    if senders is not None and senders < peers + 2:
        problems.append(f"max_wal_senders = {senders}: at least {peers + 2} needed "
                        f"({peers} standby(s) and a pg_basebackup)")
    if slots is not None and slots < peers:
        problems.append(f"max_replication_slots = {slots}: at least {peers} needed (one per other node)")
    return problems


def archive_problem(mode: str, failed_count: int, last_failed_wal: str | None, last_failed: float | None,
                    last_archived: float | None) -> str | None:
    """What to report about WAL archiving (``pg_stat_archiver``): None while it works or is off."""
    if mode == "off" or last_failed is None:
        return None
    if last_archived is not None and last_archived >= last_failed:
        return None
    return f"WAL archiving fails: {failed_count} failure(s), last on {last_failed_wal or '?'}"


def enough_space(needed: int, free: int, margin: float = 0.1) -> bool:
    """Whether ``free`` bytes hold a copy of ``needed`` bytes with some margin for WAL written meanwhile."""
    return free >= needed * (1 + margin) + 64 * 1024 * 1024


def parse_node_map(text: str, default_port: int) -> Mapping[str, tuple[str, int]]:
    """``"a=10.0.0.1 b=10.0.0.2:5433"`` -> {"a": ("10.0.0.1", default_port), "b": ("10.0.0.2", 5433)}."""
    nodes: dict[str, tuple[str, int]] = {}
    for item in text.replace(",", " ").split():
        node, sep, address = item.partition("=")
        if not sep or not node or not address:
            raise ValueError(f"expected node=host[:port], got {item!r}")
        host, _, port = address.rpartition(":") if address.count(":") == 1 else (address, "", "")
        nodes[node] = (host or address, int(port) if port else default_port)
    return nodes
