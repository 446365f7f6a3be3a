"""Prometheus metrics of a running replica, scraped over HTTP and checked against
`pgbaton status --json` (a real MariaDB, a real PostgreSQL, a real replica)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pgbaton.config import Config
from pgbaton.observe.server import StatusServer
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

LONG = "eval_cascade_orders_with_a_rather_long_table_name_ab"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _cli(cfg: Config, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pgbaton.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    return subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(path), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def replica_cfg(pg_db: str, my_db: str, mariadb: MariaDBServer) -> Config:
    my_exec(mariadb, my_db, [
        f"CREATE TABLE {LONG} (id int PRIMARY KEY, qty int NOT NULL)",
        "CREATE TABLE customers (id int PRIMARY KEY, name varchar(40))",
        *(f"INSERT INTO customers VALUES ({i}, 'c{i}')" for i in range(1, 6)),
    ])
    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    return cfg


def test_scrape_matches_status_json(replica_cfg: Config, my_db: str, mariadb: MariaDBServer, tmp_path: Path) -> None:
    cfg = replica_cfg
    with ReplicaThread(cfg), StatusServer(cfg, port=0) as server:
        my_exec(mariadb, my_db, [f"INSERT INTO {LONG} VALUES ({i}, {i})" for i in range(1, 41)])
        # replayed before the next change is written, so the two land in separate batches
        # (read together, the reader may rightly put both in one)
        wait_until(lambda: status(cfg, "src")[0]["rows_replayed"] == 40, what="first change replayed")
        my_exec(mariadb, my_db, [f"UPDATE {LONG} SET qty = qty + 1 WHERE id <= 10",
                                 "DELETE FROM customers WHERE id = 5"])
        wait_until(lambda: caught_up(cfg), what="replica caught up")
        wait_until(lambda: _cli(cfg, tmp_path, "status", "--source", "src", "--json").returncode == 0, 30)
        proc = _cli(cfg, tmp_path, "status", "--source", "src", "--json")
        assert proc.returncode == 0, proc.stderr
        st = json.loads(proc.stdout)
        code, text = _get(server.url + "metrics")
        assert code == 200
        m = _samples(text)

        src = (("source", "src"),)
        assert m[("pgbaton_replica_running", src)] == 1.0
        assert m[("pgbaton_replica_state", (("source", "src"), ("state", "running")))] == 1.0
        assert m[("pgbaton_replica_state", (("source", "src"), ("state", "stopped")))] == 0.0
        assert st["rows_replayed"] == 51                       # 40 inserts, 10 updates, 1 delete
        assert m[("pgbaton_replica_rows_replayed_total", src)] == st["rows_replayed"]
        assert m[("pgbaton_replica_pending_changes", src)] == st["pending_events"] == 0
        assert m[("pgbaton_replica_pending_batches", src)] == st["pending_batches"] == 0
        assert m[("pgbaton_replica_read_lag_seconds", src)] == st["read_lag_s"] == 0.0
        assert m[("pgbaton_replica_replay_lag_seconds", src)] == st["replay_lag_s"] == 0.0
        assert m[("pgbaton_replica_read_lag_bytes", src)] == st["read_lag_bytes"] == 0
        assert m[("pgbaton_replica_errors_total", (("kind", "replay"), ("source", "src")))] == st["errors"] == 0
        assert m[("pgbaton_replica_batches_total", src)] >= 2
        assert m[("pgbaton_replica_restarts_total", src)] == 0.0
        # changes per table: counted from the log, they add up to the source's total
        applied = {dict(k[1])["table"]: v for k, v in m.items() if k[0] == "pgbaton_replica_changes_applied_total"}
        assert applied == {f"{my_db}.{LONG}": 50.0, f"{my_db}.customers": 1.0}
        states = {dict(k[1])["table"] for k, v in m.items()
                  if k[0] == "pgbaton_replica_table_state" and dict(k[1])["state"] == "replicating" and v == 1.0}
        assert states == {t["source_table"] for t in st["tables"] if t["state"] == "replicating"}
        assert m[("pgbaton_replica_tables", (("source", "src"), ("state", "replicating")))] == st["tables_replicated"]
        assert m[("pgbaton_observe_read_failed", (("part", "replica"),))] == 0.0, _get(server.url + "api/status")[1]

        # a second scrape after more changes: counters move, never count a batch twice
        my_exec(mariadb, my_db, ["INSERT INTO customers VALUES (9, 'c9')"])
        wait_until(lambda: caught_up(cfg), what="replica caught up again")
        wait_until(lambda: _samples(_get(server.url + "metrics")[1])[
            ("pgbaton_replica_rows_replayed_total", src)] == 52, 10, "metrics to follow")
        m = _samples(_get(server.url + "metrics")[1])
        assert m[("pgbaton_replica_changes_applied_total", (("source", "src"), ("table", f"{my_db}.customers")))] == 2
        assert m[("pgbaton_replica_changes_applied_total", (("source", "src"), ("table", f"{my_db}.{LONG}")))] == 50

        # `status` into a pipe: whole table names, no wrapping
        proc = _cli(cfg, tmp_path, "status", "--source", "src")
        assert proc.returncode == 0 and f"{my_db}.{LONG}" in proc.stdout and "…" not in proc.stdout
        assert proc.stderr == ""                                 # quiet by default

    # stopped: the exporter says so (read from the catalog, no replica needed); started
    # again by hand: not an outage, so no restart (the supervisor's restarts are in the catalog)
    with StatusServer(cfg, port=0) as server:
        with ReplicaThread(cfg):
            wait_until(lambda: _samples(_get(server.url + "metrics")[1])[
                ("pgbaton_replica_running", (("source", "src"),))] == 1.0, 30, "running")
        # a scrape may serve a look up to a second old
        wait_until(lambda: _samples(_get(server.url + "metrics")[1])[
            ("pgbaton_replica_running", (("source", "src"),))] == 0.0, 10, "stopped")
        m = _samples(_get(server.url + "metrics")[1])
        assert m[("pgbaton_replica_state", (("source", "src"), ("state", "stopped")))] == 1.0
        assert m[("pgbaton_replica_restarts_total", (("source", "src"),))] == 0.0
        with ReplicaThread(cfg):
            wait_until(lambda: _samples(_get(server.url + "metrics")[1])[
                ("pgbaton_replica_running", (("source", "src"),))] == 1.0, 30, "running again")
            m = _samples(_get(server.url + "metrics")[1])
            assert m[("pgbaton_replica_restarts_total", (("source", "src"),))] == status(cfg, "src")[0]["restarts"]


def test_token_and_loopback(replica_cfg: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGBATON_TEST_TOKEN", "s3cret-token")
    data = replica_cfg.model_dump(mode="json", exclude_none=True)
    data["observe"] = {"port": 0, "token_env": "PGBATON_TEST_TOKEN"}
    cfg = Config.model_validate(data)
    with StatusServer(cfg) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert _get(server.url + "metrics")[0] == 401
        assert _get(server.url + "metrics", "wrong")[0] == 401
        assert _get(server.url + "api/status")[0] == 401
        assert _get(server.url + "healthz")[0] == 200
        code, text = _get(server.url + "metrics", "s3cret-token")
        assert code == 200 and "pgbaton_replica_state" in text
        code, body = _get(server.url + "api/status?token=s3cret-token")
        assert code == 200 and json.loads(body)["sources"][0]["name"] == "src"
        assert "s3cret-token" not in body


def test_metrics_show_and_json(replica_cfg: Config, tmp_path: Path) -> None:
    proc = _cli(replica_cfg, tmp_path, "metrics", "show")
    assert proc.returncode == 0, proc.stderr
    m = _samples(proc.stdout)
    assert m[("pgbaton_replica_state", (("source", "src"), ("state", "initialized")))] == 1.0
    proc = _cli(replica_cfg, tmp_path, "metrics", "show", "--json")
    doc = json.loads(proc.stdout)
    assert doc["ok"] is True and doc["sources"][0]["status"]["state"] == "initialized"
