"""HA node metrics against a real PostgreSQL 15 primary and a streaming standby built with
pg_basebackup; promotion scores read through the agent's file attributes; then the
standby promoted: roles and timelines follow."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pgbaton.config import parse_config
from pgbaton.observe.metrics import PgbatonCollector
from pgbaton.observe.snapshot import take
from pgbaton.sandbox.servers import SERVICE_USER_PG, PostgresServer

from .replica_helpers import wait_until


@pytest.fixture
def pair(sandbox_root: Path) -> Iterator[tuple[PostgresServer, PostgresServer]]:
    base = sandbox_root / f"ha-metrics-{id(object())}"
    primary = PostgresServer(base / "primary", settings={"wal_level": "replica", "hot_standby": "on",
                                                         "wal_receiver_status_interval": "'1s'"})
    primary.start()
    standby = PostgresServer(base / "standby")
    standby.base.mkdir(parents=True)
    standby.base.chmod(0o1777)
    from pgbaton.sandbox.servers import free_port

    standby.port = free_port()
    try:
        subprocess.run(["runuser", "-u", SERVICE_USER_PG, "--", str(primary.bin_dir / "pg_basebackup"),
                        "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres", "-D", str(standby.datadir),
                        "-R", "-X", "stream", "-c", "fast", "-d",
                        f"host=127.0.0.1 port={primary.port} user=postgres application_name=node_b"],
                       check=True, capture_output=True, timeout=120)
        standby.start()        # PG_VERSION exists: init() keeps the copy; the port comes from -o
        yield primary, standby
    finally:
        standby.stop()
        primary.stop()


def _values(cfg: object) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PgbatonCollector(lambda: take(cfg)))  # type: ignore[arg-type]
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for f in text_string_to_metric_families(generate_latest(registry).decode()) for s in f.samples}


def test_roles_lsn_sync_state_and_scores(pair: tuple[PostgresServer, PostgresServer], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    primary, standby = pair
    attrs = tmp_path / "attrs"
    attrs.mkdir()
    (attrs / "pgsql.json").write_text(json.dumps({"node_a/score": "1000", "node_b/score": "900"}))
    monkeypatch.setenv("PGBATON_ATTR_DIR", str(attrs))
    cfg = parse_config({"target": {"port": 1}, "observe": {"ha_resource": "pgsql", "ha_nodes": {
        "node_a": {"port": primary.port}, "node_b": {"port": standby.port}, "node_c": {"port": 1, "connect_timeout": 1},
    }}})
    with psycopg.connect(primary.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 1000) g")
        head = conn.execute("SELECT pg_current_wal_lsn() - '0/0'::pg_lsn").fetchone()[0]  # type: ignore[index]

    def standby_replayed() -> bool:
        with psycopg.connect(standby.dsn()) as c:
            return int(c.execute("SELECT pg_last_wal_replay_lsn() - '0/0'::pg_lsn").fetchone()[0]) >= head  # type: ignore[index]

    wait_until(standby_replayed, 30, "standby replayed")
    v = _values(cfg)
    a, b, c = (("node", "node_a"),), (("node", "node_b"),), (("node", "node_c"),)
    assert v[("pgbaton_ha_node_up", a)] == v[("pgbaton_ha_node_up", b)] == 1.0
    assert v[("pgbaton_ha_node_up", c)] == 0.0                              # unreachable: reported, not fatal
    assert v[("pgbaton_ha_node_role", (("node", "node_a"), ("role", "primary")))] == 1.0
    assert v[("pgbaton_ha_node_role", (("node", "node_b"), ("role", "standby")))] == 1.0
    assert v[("pgbaton_ha_node_role", (("node", "node_b"), ("role", "primary")))] == 0.0
    assert v[("pgbaton_ha_node_timeline", a)] == v[("pgbaton_ha_node_timeline", b)] == 1.0
    assert v[("pgbaton_ha_node_sync_state", (("node", "node_b"), ("state", "async")))] == 1.0
    assert v[("pgbaton_ha_node_lsn_bytes", b)] >= head
    assert v[("pgbaton_ha_node_lsn_bytes", a)] >= v[("pgbaton_ha_node_lsn_bytes", b)]
    assert v[("pgbaton_ha_node_replay_lag_bytes", a)] == 0.0
    assert ("pgbaton_ha_node_replay_lag_bytes", b) in v
    assert v[("pgbaton_ha_node_promotion_score", a)] == 1000.0
    assert v[("pgbaton_ha_node_promotion_score", b)] == 900.0
    assert v[("pgbaton_observe_read_failed", (("part", "ha"),))] == 0.0

    # promote the standby: it becomes a primary on timeline 2
    with psycopg.connect(standby.dsn(), autocommit=True) as conn:
        conn.execute("SELECT pg_promote(true, 60)")
    v = _values(cfg)
    assert v[("pgbaton_ha_node_role", (("node", "node_b"), ("role", "primary")))] == 1.0
    assert v[("pgbaton_ha_node_timeline", b)] == 2.0
    assert not any(k[0] == "pgbaton_ha_node_sync_state" for k in v)         # nobody streams any more
