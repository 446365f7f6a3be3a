"""Migration metrics and the page's migration rows against a real PostgreSQL 15 -> 18
migration of two databases, checked against `pgbaton migrate status --json`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from pgbaton.config import Config, parse_config
from pgbaton.migrate.execute import abort, start
from pgbaton.migrate.status import wait_synced
from pgbaton.migrate.switch_exec import SwitchFailed, switchover
from pgbaton.migrate.switchover import Action
from pgbaton.observe.server import StatusServer
from pgbaton.sandbox.servers import PostgresServer, pg18_bin

from .test_serve_page import CHROMIUM, Rows, _chromium


@pytest.fixture
def migration(pg15: PostgresServer, pg18: PostgresServer) -> Iterator[tuple[Config, str, list[str]]]:
    tag = uuid.uuid4().hex[:8]
    name, dbs = f"obs{tag}", [f"obs_{tag}_a", f"obs_{tag}_b"]
    with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
        for db in dbs:
            conn.execute(f'CREATE DATABASE "{db}"')
    for i, db in enumerate(dbs):
        with psycopg.connect(pg15.dsn(db), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY, v text); CREATE TABLE notes (id int PRIMARY KEY)")
            conn.execute("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, %s) g", (100 * (i + 1),))
    cfg = parse_config({"target": {"port": pg18.port}, "migrations": {name: {
        "source": {"port": pg15.port}, "target": {"port": pg18.port}, "databases": dbs,
        "options": {"bin_dir": str(pg18_bin())}}}, "observe": {"port": 0, "sample_seconds": 0.5}})
    try:
        yield cfg, name, dbs
    finally:
        abort(cfg, name)
        with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
            for db in dbs:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def test_migration_metrics_match_migrate_status(migration: tuple[Config, str, list[str]], tmp_path: Path) -> None:
    cfg, name, dbs = migration
    path = tmp_path / "pgbaton.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    with StatusServer(cfg) as server:
        text = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(path), "metrics", "show"],
                              capture_output=True, text=True, timeout=120).stdout
        assert f'pgbaton_migration_state{{migration="{name}",state="not_started"}} 1.0' in text
        start(cfg, name)
        wait_synced(cfg, name, timeout=300)
        proc = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(path), "migrate", "status", name, "--json"],
                              capture_output=True, text=True, timeout=120)
        st = json.loads(proc.stdout)
        with urllib.request.urlopen(server.url + "metrics", timeout=60) as resp:
            m = {(s.name, tuple(sorted(s.labels.items()))): s.value
                 for f in text_string_to_metric_families(resp.read().decode()) for s in f.samples}
        assert m[("pgbaton_migration_state", (("migration", name), ("state", st["state"])))] == 1.0
        assert st["state"] == "streaming"
        for d in st["databases"]:
            key = (("database", d["database"]), ("migration", name))
            assert m[("pgbaton_migration_tables_synced", key)] == d["tables_synced"] == 2
            assert m[("pgbaton_migration_tables", key)] == d["tables_total"] == 2
            assert m[("pgbaton_migration_database_state", (("database", d["database"]), ("direction", "forward"),
                                                           ("migration", name), ("state", "streaming")))] == 1.0
            assert ("pgbaton_migration_lag_bytes", key) in m and m[("pgbaton_migration_stream_errors", key)] == 0.0
        assert {d["database"] for d in st["databases"]} == set(dbs)
        assert st["switches"] == [] and not any(k[0].startswith("pgbaton_migration_last_switch") for k in m)

        # a switch that fails inside the pause and is rolled back: its outcome and pause, as recorded
        with pytest.raises(SwitchFailed):
            switchover(cfg, name, fail_at=Action.copy_sequences)
        proc = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(path), "migrate", "status", name, "--json"],
                              capture_output=True, text=True, timeout=120)
        last = json.loads(proc.stdout)["switches"][-1]
        assert last["direction"] == "switchover" and last["outcome"] == "rolled_back", last
        assert last["paused_seconds"] > 0 and "copy_sequences" in last["reason"]
        assert set(last["databases"]) == set(dbs) and all("read_source_lsn" in s for s in last["databases"].values())
        deadline = time.monotonic() + 30  # the exporter serves a look up to sample_seconds old
        while True:
            with urllib.request.urlopen(server.url + "metrics", timeout=60) as resp:
                m = {(s.name, tuple(sorted(s.labels.items()))): s.value
                     for f in text_string_to_metric_families(resp.read().decode()) for s in f.samples}
            if m.get(("pgbaton_migration_last_switch_outcome", (("migration", name), ("outcome", "rolled_back")))):
                break
            assert time.monotonic() < deadline, "the rolled back switch never reached the metrics"
            time.sleep(0.3)
        assert m[("pgbaton_migration_last_switch_outcome", (("migration", name), ("outcome", "complete")))] == 0.0
        assert m[("pgbaton_migration_last_switch_direction", (("direction", "switchover"), ("migration", name)))] == 1
        assert m[("pgbaton_migration_last_switch_pause_seconds", (("migration", name),))] == last["paused_seconds"]
        assert ("pgbaton_migration_last_switch_end_timestamp_seconds", (("migration", name),)) in m
        for db in dbs:
            assert m[("pgbaton_migration_last_switch_database_pause_seconds",
                      (("database", db), ("migration", name)))] > 0

        if CHROMIUM is None:
            return
        out = _chromium("--dump-dom", server.url)
        page = Rows()
        page.feed(out.stdout)
        assert page.body.get("data-loaded") == "yes"
        for db in dbs:
            row = page.find(migration=name, database=db)
            assert row[:6] == [name, "streaming", db, "forward", "streaming", "2/2"], row
        assert "no replica source configured" in " ".join(page.text)
