"""Preflight verdicts of a PostgreSQL -> PostgreSQL migration: pure, no servers."""

from __future__ import annotations

from dataclasses import replace

from pgbaton.config import NoKeyPolicy
from pgbaton.migrate.model import ClusterFacts, PreflightFacts, SourceDbFacts, Status, TargetDbFacts
from pgbaton.migrate.plan import may_start, preflight

CLUSTER = ClusterFacts(version_num=150020, wal_level="logical", max_replication_slots=20, used_replication_slots=0,
                       max_wal_senders=20, used_wal_senders=0, max_worker_processes=32,
                       max_logical_replication_workers=10, max_sync_workers_per_subscription=2,
                       is_superuser=True, can_replicate=True, available_extensions=frozenset({"plpgsql", "hstore"}))
TARGET = replace(CLUSTER, version_num=180006)


def facts(*, source: ClusterFacts = CLUSTER, target: ClusterFacts = TARGET, sdb: SourceDbFacts | None = None,
          tdb: TargetDbFacts | None = None) -> PreflightFacts:
    return PreflightFacts(source, target, (sdb or SourceDbFacts("app", True, 3, extensions=("plpgsql",)),),
                          (tdb or TargetDbFacts("app", False),))


def by_item(verdicts: list, item: str) -> Status:  # type: ignore[type-arg]
    (v,) = [v for v in verdicts if v.item == item]
    return v.status


def test_a_healthy_pair_may_start() -> None:
    v = preflight(facts())
    assert may_start(v) and all(x.status is Status.ok for x in v), [x for x in v if x.status is not Status.ok]


def test_downgrade_and_missing_wal_level_fail() -> None:
    v = preflight(facts(source=replace(CLUSTER, wal_level="replica"), target=replace(TARGET, version_num=140000)))
    assert by_item(v, "major_version") is Status.fail
    assert by_item(v, "source.wal_level") is Status.fail
    assert not may_start(v)


def test_target_wal_level_only_warns_because_it_serves_the_reverse_stream() -> None:
    v = preflight(facts(target=replace(TARGET, wal_level="replica")))
    assert by_item(v, "target.wal_level") is Status.warn and may_start(v)


def test_slots_are_counted_per_database_plus_those_in_use() -> None:
    # a stream per database and at least one table copy (its own slot): 2 in use + 1 + 1
    tight = replace(CLUSTER, max_replication_slots=3, used_replication_slots=2)
    v = preflight(facts(source=tight))
    assert by_item(v, "source.max_replication_slots") is Status.fail  # 3 = 2 in use + the stream: no copy
    v1 = preflight(facts(source=replace(tight, max_replication_slots=4)))
    assert by_item(v1, "source.max_replication_slots") is Status.warn  # one table copy at a time, not 2
    two_dbs = PreflightFacts(replace(tight, max_replication_slots=4), TARGET,
                             (SourceDbFacts("a", True), SourceDbFacts("b", True)),
                             (TargetDbFacts("a", False), TargetDbFacts("b", False)))
    assert by_item(preflight(two_dbs), "source.max_replication_slots") is Status.fail
    # enough for every stream and one database's table copies: start queues the other databases' copies
    ten = PreflightFacts(replace(CLUSTER, max_replication_slots=12), TARGET,
                         tuple(SourceDbFacts(f"d{i}", True) for i in range(10)),
                         tuple(TargetDbFacts(f"d{i}", False) for i in range(10)))
    (slots,) = [x for x in preflight(ten) if x.item == "source.max_replication_slots"]
    assert slots.status is Status.ok and "1 of 10 database(s) copy at once" in slots.detail, slots


def test_target_workers_fail_but_source_workers_only_warn() -> None:
    v = preflight(facts(source=replace(CLUSTER, max_worker_processes=1),
                        target=replace(TARGET, max_worker_processes=1)))
    assert by_item(v, "target.max_worker_processes") is Status.fail
    assert by_item(v, "source.max_worker_processes") is Status.warn


def test_privileges() -> None:
    v = preflight(facts(source=replace(CLUSTER, is_superuser=False, can_replicate=False)))
    assert by_item(v, "source.privileges") is Status.fail
    assert "REPLICATION" in next(x.detail for x in v if x.item == "source.privileges")


def test_clients_sharing_pgbatons_user_are_warned_about() -> None:
    v = preflight(facts(target=replace(TARGET, user_name="postgres", user_sessions=3)))
    assert by_item(v, "target.user") is Status.warn and by_item(v, "source.user") is Status.ok and may_start(v)
    detail = next(x.detail for x in v if x.item == "target.user")
    assert "3 other client session(s) connect as postgres" in detail and "migrations.<name>.target" in detail


def test_database_items() -> None:
    sdb = SourceDbFacts("app", True, 4, tables_without_key=("public.events",), unlogged_tables=("public.cache",),
                        large_objects=2, extensions=("plpgsql", "postgis"))
    v = preflight(facts(sdb=sdb, tdb=TargetDbFacts("app", True, tables=5)))
    assert by_item(v, "target_database") is Status.fail
    assert by_item(v, "tables_without_key") is Status.warn
    assert "public.events" in next(x.detail for x in v if x.item == "tables_without_key")
    assert by_item(v, "unlogged_tables") is Status.warn
    assert by_item(v, "large_objects") is Status.fail
    assert by_item(v, "extensions") is Status.fail
    assert "postgis" in next(x.detail for x in v if x.item == "extensions")
    assert all(x.database == "app" for x in v if x.item == "extensions")
    strict = preflight(facts(sdb=sdb), NoKeyPolicy.refuse)
    assert by_item(strict, "tables_without_key") is Status.fail


def test_target_database_states() -> None:
    assert by_item(preflight(facts(tdb=TargetDbFacts("app", True, 0))), "target_database") is Status.warn
    assert by_item(preflight(facts(tdb=TargetDbFacts("app", True, 3, created_by_pgbaton=True))),
                   "target_database") is Status.ok
    missing = preflight(facts(sdb=SourceDbFacts("app", False)))
    assert by_item(missing, "source_database") is Status.fail
