"""Preflight: a clear verdict per item, decided purely from observed facts."""

from __future__ import annotations

from pgbaton.config import NoKeyPolicy
from pgbaton.migrate import pace
from pgbaton.migrate.model import ClusterFacts, PreflightFacts, SourceDbFacts, Status, TargetDbFacts, Verdict

OK, WARN, FAIL = Status.ok, Status.warn, Status.fail


def preflight(facts: PreflightFacts, no_key: NoKeyPolicy = NoKeyPolicy.replica_identity_full) -> list[Verdict]:
    """Every check of ``migrate check``; the migration may start only if none fails."""
    n = len(facts.source_dbs)
    out = [*_versions(facts.source, facts.target)]
    # the table copies are the target's: its max_sync_workers_per_subscription counts on both sides
    sync = facts.target.max_sync_workers_per_subscription
    out += _cluster("source", facts.source, n, sync, publishes=True)
    out += _cluster("target", facts.target, n, sync, publishes=False)
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


def _cluster(side: str, c: ClusterFacts, n: int, sync: int, *, publishes: bool) -> list[Verdict]:
    """Settings one side needs: forward publishing on the source, and the reverse after switchover."""
    out: list[Verdict] = []
    if c.wal_level == "logical":
        out.append(Verdict(f"{side}.wal_level", OK, "logical"))
    else:
        # the source needs it now; the target only for the reverse stream after switchover
        status = FAIL if publishes else WARN
        out.append(Verdict(f"{side}.wal_level", status, f"is {c.wal_level}; set wal_level = logical and restart"
                           + ("" if publishes else " (needed for the reverse stream after switchover)")))
    # the side that publishes now (the source): one slot and walsender per database, and the table
    # copies of the databases copying at once (``pace``: start queues those that do not fit); the
    # target publishes only the reverse stream after switchover, which copies nothing
    for item, have, used in (("max_replication_slots", c.max_replication_slots, c.used_replication_slots),
                             ("max_wal_senders", c.max_wal_senders, c.used_wal_senders)):
        if publishes:
            out.append(_copies(f"{side}.{item}", have - used, n, sync, f"{used} in use, {n} database(s)"))
        else:
            out.append(_streams(f"{side}.{item}", have - used, n, f"{used} in use, {n} database(s)"))
    # workers of the side that subscribes: one apply worker per database and the table copies of the
    # databases copying; max_worker_processes counts the logical replication launcher on top; on
    # PostgreSQL 18+ each of those workers holds a replication origin
    limits = [("max_logical_replication_workers", c.max_logical_replication_workers, 0),
              ("max_worker_processes", c.max_worker_processes, 1)]
    if c.max_active_replication_origins is not None:
        limits.append(("max_active_replication_origins", c.max_active_replication_origins, 0))
    for item, have, extra in limits:
        why = f"{n} subscription(s)" + (" and the launcher" if extra else "")
        if publishes:  # the source subscribes only to the reverse stream, after switchover
            out.append(_streams(f"{side}.{item}", have - extra, n, why, shown=have))
        else:
            out.append(_copies(f"{side}.{item}", have - extra, n, sync, why, shown=have, extra=extra))
    if c.is_superuser:
        out.append(Verdict(f"{side}.privileges", OK, "superuser"))
    else:
        out.append(Verdict(f"{side}.privileges", FAIL,
                           "pgbaton needs a superuser to create FOR ALL TABLES publications and subscriptions"
                           + ("" if c.can_replicate else "; the role also lacks REPLICATION")))
    out.append(_shared_user(side, c))
    return out


def _shared_user(side: str, c: ClusterFacts) -> Verdict:
    """The streams into a database a switch froze run as pgbaton's user, which alone stays
    read-write there: clients sharing that user would not be frozen."""
    item = f"{side}.user"
    if not c.user_sessions:
        return Verdict(item, OK, f"{c.user_name}: no other client session uses it")
    return Verdict(item, WARN, f"{c.user_sessions} other client session(s) connect as {c.user_name}, the user "
                   f"pgbaton connects as; after a switch that user stays read-write in the frozen databases "
                   f"(the stream back runs as it), so such clients could write there: give pgbaton a "
                   f"superuser of its own (key `user` of migrations.<name>.{side})")


def _copies(item: str, room: int, n: int, sync: int, why: str, *, shown: int | None = None,
            extra: int = 0) -> Verdict:
    """A resource the initial copies share (``room``: the setting less what is in use or reserved):
    every database's stream and one database's table copies at least; more lets more databases copy
    at once (``start`` queues the others)."""
    have = room if shown is None else shown
    used = have - room
    least, best = pace.needed(n, sync)
    if room < n + 1:
        return Verdict(item, FAIL, f"{have} < {used + n + 1} needed ({why}: a stream each and a table copy)")
    if room < least:
        return Verdict(item, WARN, f"{have}: enough for the streams and {room - n} table copy(ies) at a time, "
                       f"fewer than max_sync_workers_per_subscription ({sync}): copies that find no room fail "
                       f"and are retried; {used + least} lets a database copy {sync} tables at once")
    at_once = min(n, (room - n) // max(1, sync))
    more = "" if at_once >= n else f"; the others are queued by start ({used + best} copies all at once)"
    return Verdict(item, OK, f"{have} >= {used + least} ({why}): {at_once} of {n} database(s) copy at once"
                   + more)


def _streams(item: str, room: int, n: int, why: str, *, shown: int | None = None) -> Verdict:
    """A resource the reverse stream needs after switchover: one per database, no copies."""
    have = room if shown is None else shown
    used = have - room
    if room >= n:
        return Verdict(item, OK, f"{have} >= {used + n} ({why})")
    return Verdict(item, WARN, f"{have} < {used + n} needed ({why}) (for the reverse stream after switchover)")


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
