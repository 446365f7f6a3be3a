"""Metric names without servers: the conventions, and that the docs and the Grafana
dashboard name only metrics the exporter makes (and the docs all of them)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pgbaton.observe.metrics import PgbatonCollector
from pgbaton.observe.snapshot import MigrationView, NodeView, Snapshot, SourceView, TableView

DOCS = Path(__file__).parents[2] / "docs"


def _snapshot() -> Snapshot:
    status = {"source": "s", "state": "running", "running": True, "read_lag_s": 0.5, "read_lag_bytes": 10,
              "replay_lag_s": 0.1, "pending_events": 3, "pending_batches": 1, "rows_replayed": 7,
              "xa_prepared": 0, "last_event_at": "2026-12-02T04:00:00+00:00"}
    return Snapshot(
        sources=[SourceView("s", status, [TableView("db.t", "app.t", "replicating", 7)], 4, {"replay": 1}, 99)],
        migrations=[MigrationView("m", "streaming", [{"database": "d", "direction": "forward", "state": "streaming",
                                                      "tables_synced": 2, "tables_total": 2, "lag_bytes": 0,
                                                      "lag_seconds": 0.0, "errors": []}],
                                  last_switch={"direction": "switchover", "outcome": "complete",
                                               "started_at": "2026-12-02T04:00:00+00:00",
                                               "ended_at": "2026-12-02T04:00:02+00:00", "paused_seconds": 0.25,
                                               "databases": {"d": {"pause_clients": 0.01, "open_reverse": 0.2}}})],
        ha_nodes=[NodeView("n1", True, "primary", 2, 1000, "0/3E8", 0, None, 1000),
                  NodeView("n2", True, "standby", 2, 900, "0/384", 100, "sync", 900)],
        errors={}, seconds={"replica": 0.01, "migrate": 0.01, "ha": 0.01})


def _families() -> dict[str, tuple[str, set[str]]]:
    snap = _snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PgbatonCollector(lambda: snap))
    out = {}
    for fam in text_string_to_metric_families(generate_latest(registry).decode()):
        out[fam.name] = (fam.type, {s.name for s in fam.samples})
    return out


def test_names_follow_the_conventions() -> None:
    fams = _families()
    assert len(fams) > 25
    for name, (kind, samples) in fams.items():
        assert re.fullmatch(r"pgbaton_[a-z]+(_[a-z]+)*", name), name
        if kind == "counter":
            assert samples == {f"{name}_total"} | ({f"{name}_created"} & samples), (name, samples)
        else:
            assert not name.endswith("_total"), name
        assert not re.search(r"_(ms|milliseconds|kb|mb|mib)$", name), name


def _sample_names() -> set[str]:
    return {s for _, samples in _families().values() for s in samples}


def test_dashboard_and_docs_name_real_metrics() -> None:
    known = _sample_names()
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"pgbaton_[a-z_]+", e)}
    assert used and used <= known, used - known
    doc = (DOCS / "observability.md").read_text()
    documented = set(re.findall(r"`(pgbaton_[a-z_]+)", doc))
    assert documented <= known, documented - known
    assert {n for n in known if not n.endswith("_created")} <= documented, known - documented


def test_values_of_one_snapshot() -> None:
    snap = _snapshot()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PgbatonCollector(lambda: snap))
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for fam in text_string_to_metric_families(generate_latest(registry).decode()) for s in fam.samples}
    assert values[("pgbaton_replica_changes_applied_total", (("source", "s"), ("table", "db.t")))] == 7
    assert values[("pgbaton_replica_errors_total", (("kind", "replay"), ("source", "s")))] == 1
    assert values[("pgbaton_replica_errors_total", (("kind", "ddl"), ("source", "s")))] == 0
    assert values[("pgbaton_ha_node_sync_state", (("node", "n2"), ("state", "sync")))] == 1
    assert values[("pgbaton_ha_node_role", (("node", "n1"), ("role", "primary")))] == 1
    assert values[("pgbaton_migration_state", (("migration", "m"), ("state", "streaming")))] == 1
    assert values[("pgbaton_migration_state", (("migration", "m"), ("state", "switched")))] == 0
