"""Preflight: a clear verdict per item, decided purely from observed facts."""

from __future__ import annotations

from pgbaton.config import NoKeyPolicy
from pgbaton.migrate.model import ClusterFacts, PreflightFacts, SourceDbFacts, Status, TargetDbFacts, Verdict

OK, WARN, FAIL = Status.ok, Status.warn, Status.fail


def preflight(facts: PreflightFacts, no_key: NoKeyPolicy = NoKeyPolicy.replica_identity_full) -> list[Verdict]:
    """Every check of ``migrate check``; the migration may start only if none fails."""
    n = len(facts.source_dbs)
    out = [*_versions(facts.source, facts.target)]
    out += _cluster("source", facts.source, n, publishes=True)
    out += _cluster("target", facts.target, n, publishes=False)
    for sdb, tdb in zip(facts.source_dbs, facts.target_dbs, strict=True):
        out += _database(sdb, tdb, facts.target, no_key)
    return out


def may_start(verdicts: list[Verdict]) -> bool:
    return all(v.status is not FAIL for v in verdicts)


def _versions(src: ClusterFacts, tgt: ClusterFacts) -> list[Verdict]:
    ok = tgt.major >= src.major
    return [Verdict("major_version", OK if ok else FAIL,
                    f"source {src.major}, target {tgt.major}"
                    + ("" if ok else ": the target must run the same or a newer major version"))]


def _cluster(side: str, c: ClusterFacts, n: int, *, publishes: bool) -> list[Verdict]:
    """Settings one side needs: forward publishing on the source, and the reverse after switchover."""
    out: list[Verdict] = []
    if c.wal_level == "logical":
        out.append(Verdict(f"{side}.wal_level", OK, "logical"))
    else:
        # the source needs it now; the target only for the reverse stream after switchover
        status = FAIL if publishes else WARN
        out.append(Verdict(f"{side}.wal_level", status, f"is {c.wal_level}; set wal_level = logical and restart"
                           + ("" if publishes else " (needed for the reverse stream after switchover)")))
    sync = c.max_sync_workers_per_subscription
    # slots and senders: one per database, plus table-sync slots during the initial copy
    for item, have, used in (("max_replication_slots", c.max_replication_slots, c.used_replication_slots),
                             ("max_wal_senders", c.max_wal_senders, c.used_wal_senders)):
        need, best = used + n, used + n * (1 + sync)
        out.append(_enough(f"{side}.{item}", have, need, best, publishes,
                           f"{used} in use, {n} database(s)"))
    # workers of the side that subscribes: one apply worker per database (and up to ``sync`` table
    # copies each); max_worker_processes counts the logical replication launcher on top
    need_w, best_w = n, n * (1 + sync)
    out.append(_enough(f"{side}.max_logical_replication_workers", c.max_logical_replication_workers,
                       need_w, best_w, not publishes, f"{n} subscription(s)"))
    out.append(_enough(f"{side}.max_worker_processes", c.max_worker_processes, need_w + 1, best_w + 1,
                       not publishes, f"{n} subscription(s) and the launcher"))
    if c.max_active_replication_origins is not None:  # 18+: each of those workers holds an origin
        out.append(_enough(f"{side}.max_active_replication_origins", c.max_active_replication_origins,
                           need_w, best_w, not publishes, f"{n} subscription(s)"))
    if c.is_superuser:
        out.append(Verdict(f"{side}.privileges", OK, "superuser"))
    else:
        out.append(Verdict(f"{side}.privileges", FAIL,
                           "pgbaton needs a superuser to create FOR ALL TABLES publications and subscriptions"
                           + ("" if c.can_replicate else "; the role also lacks REPLICATION")))
    return out


def _enough(item: str, have: int, need: int, best: int, now: bool, why: str) -> Verdict:
    when = "" if now else " (for the reverse stream after switchover)"
    if have >= best:
        return Verdict(item, OK, f"{have} >= {best} ({why})")
    if have >= need:
        return Verdict(item, WARN, f"{have}: enough ({need}), but the initial copy runs faster with {best}{when}")
    return Verdict(item, FAIL if now else WARN, f"{have} < {need} needed ({why}){when}")


def _database(sdb: SourceDbFacts, tdb: TargetDbFacts, target: ClusterFacts, no_key: NoKeyPolicy) -> list[Verdict]:
    db = sdb.name
    if not sdb.exists:
        return [Verdict("source_database", FAIL, "does not exist on the source", db)]
    out = [Verdict("source_database", OK, f"{sdb.tables} table(s)", db)]
    if not tdb.exists:
        out.append(Verdict("target_database", OK, "absent: pgbaton will create it", db))
    elif tdb.created_by_pgbaton:
        out.append(Verdict("target_database", OK, "created by this migration", db))
    elif tdb.tables == 0:
        out.append(Verdict("target_database", WARN, "exists and has no tables: pgbaton will use it "
                           "(abort will not drop it)", db))
    else:
        out.append(Verdict("target_database", FAIL, f"exists with {tdb.tables} table(s); pgbaton copies into an "
                           "absent or empty database only", db))
    if sdb.tables_without_key:
        names = ", ".join(sdb.tables_without_key)
        if no_key is NoKeyPolicy.refuse:
            out.append(Verdict("tables_without_key", FAIL, f"no primary key or replica identity: {names}", db))
        else:
            out.append(Verdict("tables_without_key", WARN, f"no primary key or replica identity: {names}; pgbaton "
                               "will set REPLICA IDENTITY FULL (updates/deletes apply slower)", db))
    else:
        out.append(Verdict("tables_without_key", OK, "every table has a primary key, a replica identity or a "
                           "unique NOT NULL index", db))
    if sdb.tables_with_unique_index:
        out.append(Verdict("tables_with_unique_index", OK, "no primary key, but a unique index on NOT NULL columns: "
                           "pgbaton will set REPLICA IDENTITY USING INDEX: " + ", ".join(sdb.tables_with_unique_index),
                           db))
    if sdb.unlogged_tables:
        out.append(Verdict("unlogged_tables", WARN, "not replicated, schema only: "
                           + ", ".join(sdb.unlogged_tables), db))
    else:
        out.append(Verdict("unlogged_tables", OK, "none", db))
    if sdb.large_objects:
        out.append(Verdict("large_objects", FAIL, f"{sdb.large_objects} large object(s): logical replication does "
                           "not carry them; move them to bytea or copy them separately", db))
    else:
        out.append(Verdict("large_objects", OK, "none", db))
    missing = sorted(set(sdb.extensions) - target.available_extensions)
    if missing:
        out.append(Verdict("extensions", FAIL, "not available on the target: " + ", ".join(missing), db))
    else:
        out.append(Verdict("extensions", OK, ", ".join(sdb.extensions) or "none", db))
    return out
