"""Prometheus metrics from a snapshot, computed when Prometheus scrapes.

Names follow the Prometheus conventions: a ``pgbaton_`` prefix, base units in the name
(``_seconds``, ``_bytes``), ``_total`` for counters, one label set per series, and an
enumeration as one series per possible state valued 1 or 0.  docs/observability.md
lists every metric.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pgbaton.migrate.lifecycle import State
from pgbaton.migrate.model import DbState
from pgbaton.migrate.switchover import ORDER, Action
from pgbaton.observe.snapshot import MigrationView, NodeView, Snapshot, SourceView

# as the catalog's CHECK constraints and the migration's enums name them
REPLICA_STATES = ("new", "initializing", "initialized", "running", "stopped", "error")
TABLE_STATES = ("copying", "replicating", "disabled")
MIGRATION_STATES = tuple(s.value for s in State)
DATABASE_STATES = tuple(s.value for s in DbState)
ROLES = ("primary", "standby")
SWITCH_OUTCOMES = ("running", "complete", "rolled_back", "cancelled")  # catalog switch_history.outcome
SWITCH_DIRECTIONS = ("switchover", "switchback")
PAUSED_STEPS = frozenset(a.value for a in ORDER[:ORDER.index(Action.point_switcher) + 1])


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"pgbaton_{name}", doc, labels=labels)


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(f"pgbaton_{name}", doc, labels=labels)


def replica_metrics(sources: list[SourceView]) -> Iterator[Metric]:
    up = _gauge("replica_running", "1 when the replica of the source is running.", ["source"])
    state = _gauge("replica_state", "The source's state in the catalog (1 for the current one).", ["source", "state"])
    read_s = _gauge("replica_read_lag_seconds", "How far the binlog reader is behind the source.", ["source"])
    read_b = _gauge("replica_read_lag_bytes", "Binlog bytes between the reader and the source's head "
                                              "(same binlog file only).", ["source"])
    replay_s = _gauge("replica_replay_lag_seconds", "Age of the oldest stored batch not yet replayed.", ["source"])
    pending = _gauge("replica_pending_changes", "Row changes stored and not yet replayed.", ["source"])
    pending_b = _gauge("replica_pending_batches", "Batches stored and not yet replayed.", ["source"])
    replayed = _counter("replica_rows_replayed", "Row changes replayed into the target.", ["source"])
    applied = _counter("replica_changes_applied", "Row changes replayed into a target table.",
                       ["source", "table"])
    batches = _counter("replica_batches", "Batches written to the log since the source was registered.", ["source"])
    errors = _counter("replica_errors", "Errors recorded in the catalog (replay, ddl, reader).", ["source", "kind"])
    tables = _gauge("replica_tables", "Tables of the source per state.", ["source", "state"])
    table_state = _gauge("replica_table_state", "A table's state (1 for the current one).",
                         ["source", "table", "state"])
    restart = _counter("replica_restarts", "Times the supervisor started the replica again after an outage.",
                       ["source"])
    xa = _gauge("replica_xa_prepared", "XA transactions prepared on the source, waiting for their end.", ["source"])
    last_event = _gauge("replica_last_event_timestamp_seconds", "Source time of the last event read.", ["source"])
    for s in sources:
        st = s.status
        src = [s.name]
        up.add_metric(src, 1.0 if st.get("running") else 0.0)
        known = REPLICA_STATES if st["state"] in REPLICA_STATES else (*REPLICA_STATES, st["state"])
        for name in known:
            state.add_metric([s.name, name], 1.0 if st["state"] == name else 0.0)
        restart.add_metric(src, float(st.get("restarts", 0)))
        if st["state"] == "not registered":
            continue
        if st.get("read_lag_s") is not None:
            read_s.add_metric(src, float(st["read_lag_s"]))
        if st.get("read_lag_bytes") is not None:
            read_b.add_metric(src, float(st["read_lag_bytes"]))
        replay_s.add_metric(src, float(st.get("replay_lag_s") or 0.0))
        pending.add_metric(src, float(st.get("pending_events", 0)))
        pending_b.add_metric(src, float(st.get("pending_batches", 0)))
        replayed.add_metric(src, float(st.get("rows_replayed", 0)))
        batches.add_metric(src, float(s.batches_total))
        xa.add_metric(src, float(st.get("xa_prepared", 0)))
        if st.get("last_event_at"):
            from datetime import datetime

            last_event.add_metric(src, datetime.fromisoformat(st["last_event_at"]).timestamp())
        for kind in ("replay", "ddl", "reader"):
            errors.add_metric([s.name, kind], float(s.errors_by_kind.get(kind, 0)))
        counts = {k: 0 for k in TABLE_STATES}
        for t in s.tables:
            counts[t.state] = counts.get(t.state, 0) + 1
            applied.add_metric([s.name, t.table], float(t.changes_applied))
            for name in TABLE_STATES:
                table_state.add_metric([s.name, t.table, name], 1.0 if t.state == name else 0.0)
        for name, n in counts.items():
            tables.add_metric([s.name, name], float(n))
    yield from (up, state, read_s, read_b, replay_s, pending, pending_b, replayed, applied, batches, errors, tables,
                table_state, restart, xa, last_event)


def migration_metrics(migrations: list[MigrationView]) -> Iterator[Metric]:
    state = _gauge("migration_state", "The migration's state (1 for the current one).", ["migration", "state"])
    db_state = _gauge("migration_database_state", "A database's stream state (1 for the current one).",
                      ["migration", "database", "direction", "state"])
    lag_b = _gauge("migration_lag_bytes", "WAL bytes the subscriber has not confirmed yet.", ["migration", "database"])
    lag_s = _gauge("migration_lag_seconds", "Replay lag of the running stream.", ["migration", "database"])
    synced = _gauge("migration_tables_synced", "Tables whose initial copy is done.", ["migration", "database"])
    total = _gauge("migration_tables", "Tables in the migrated database.", ["migration", "database"])
    errs = _gauge("migration_stream_errors", "1 when the subscription reports apply or sync errors.",
                  ["migration", "database"])
    sw_pause = _gauge("migration_last_switch_pause_seconds", "How long the last switch held the clients "
                      "(PAUSE .. RESUME).", ["migration"])
    sw_outcome = _gauge("migration_last_switch_outcome", "How the last switch ended (1 for its outcome).",
                        ["migration", "outcome"])
    sw_direction = _gauge("migration_last_switch_direction", "The last switch's direction (1 for it).",
                          ["migration", "direction"])
    sw_end = _gauge("migration_last_switch_end_timestamp_seconds", "When the last switch ended.", ["migration"])
    sw_db = _gauge("migration_last_switch_database_pause_seconds", "How long the last switch's steps inside the "
                   "pause took for one database (summed; the steps of all databases run side by side).",
                   ["migration", "database"])
    for m in migrations:
        known = MIGRATION_STATES if m.state in MIGRATION_STATES else (*MIGRATION_STATES, m.state)
        for name in known:
            state.add_metric([m.name, name], 1.0 if m.state == name else 0.0)
        for d in m.databases:
            key = [m.name, str(d["database"])]
            for name in DATABASE_STATES:
                db_state.add_metric([*key, str(d["direction"]), name], 1.0 if d["state"] == name else 0.0)
            if d.get("lag_bytes") is not None:
                lag_b.add_metric(key, float(d["lag_bytes"]))
            if d.get("lag_seconds") is not None:
                lag_s.add_metric(key, float(d["lag_seconds"]))
            synced.add_metric(key, float(d["tables_synced"]))
            total.add_metric(key, float(d["tables_total"]))
            errs.add_metric(key, 1.0 if d.get("errors") else 0.0)
        _last_switch(m, sw_pause, sw_outcome, sw_direction, sw_end, sw_db)
    yield from (state, db_state, lag_b, lag_s, synced, total, errs, sw_pause, sw_outcome, sw_direction, sw_end, sw_db)


def _last_switch(m: MigrationView, pause: GaugeMetricFamily, outcome: GaugeMetricFamily,
                 direction: GaugeMetricFamily, end: GaugeMetricFamily, per_db: GaugeMetricFamily) -> None:
    sw = m.last_switch
    if not sw:
        return
    if sw.get("paused_seconds") is not None:
        pause.add_metric([m.name], float(sw["paused_seconds"]))
    known = SWITCH_OUTCOMES if sw["outcome"] in SWITCH_OUTCOMES else (*SWITCH_OUTCOMES, sw["outcome"])
    for name in known:
        outcome.add_metric([m.name, name], 1.0 if sw["outcome"] == name else 0.0)
    for name in SWITCH_DIRECTIONS:
        direction.add_metric([m.name, name], 1.0 if sw["direction"] == name else 0.0)
    if sw.get("ended_at"):
        from datetime import datetime

        end.add_metric([m.name], datetime.fromisoformat(sw["ended_at"]).timestamp())
    for db, steps in (sw.get("databases") or {}).items():
        per_db.add_metric([m.name, db], float(sum(v for k, v in steps.items() if k in PAUSED_STEPS)))


def ha_metrics(nodes: list[NodeView]) -> Iterator[Metric]:
    up = _gauge("ha_node_up", "1 when the node's PostgreSQL answers.", ["node"])
    role = _gauge("ha_node_role", "The node's role (1 for the current one).", ["node", "role"])
    tli = _gauge("ha_node_timeline", "The node's timeline.", ["node"])
    lsn = _gauge("ha_node_lsn_bytes", "WAL position: written on a primary, replayed on a standby.", ["node"])
    lag = _gauge("ha_node_replay_lag_bytes", "WAL bytes the standby has still to replay, as the primary sees it.",
                 ["node"])
    sync = _gauge("ha_node_sync_state", "The standby's replication state on the primary (1 for the current one).",
                  ["node", "state"])
    score = _gauge("ha_node_promotion_score", "The promotion score the agent set for the node.", ["node"])
    for n in nodes:
        up.add_metric([n.name], 1.0 if n.up else 0.0)
        if not n.up:
            continue
        for name in ROLES:
            role.add_metric([n.name, name], 1.0 if n.role == name else 0.0)
        if n.timeline is not None:
            tli.add_metric([n.name], float(n.timeline))
        if n.lsn is not None:
            lsn.add_metric([n.name], float(n.lsn))
        if n.replay_lag_bytes is not None:
            lag.add_metric([n.name], float(n.replay_lag_bytes))
        if n.sync_state is not None:
            sync.add_metric([n.name, n.sync_state], 1.0)
        if n.promotion_score is not None:
            score.add_metric([n.name], float(n.promotion_score))
    yield from (up, role, tli, lsn, lag, sync, score)


def exporter_metrics(snap: Snapshot) -> Iterable[Metric]:
    failed = _gauge("observe_read_failed", "1 when a part could not be read in this scrape.", ["part"])
    took = _gauge("observe_read_seconds", "How long reading a part took.", ["part"])
    for part in ("replica", "migrate", "ha"):
        failed.add_metric([part], 1.0 if part in snap.errors else 0.0)
        if part in snap.seconds:
            took.add_metric([part], snap.seconds[part])
    return (failed, took)


class PgbatonCollector(Collector):
    """Collects on each scrape from ``snapshot()`` (which may serve a very recent cached look)."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self.snapshot()
        yield from replica_metrics(snap.sources)
        yield from migration_metrics(snap.migrations)
        yield from ha_metrics(snap.ha_nodes)
        yield from exporter_metrics(snap)
