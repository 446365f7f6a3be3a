"""Detach: the target becomes a standalone database; drop_source removes pgbaton's objects."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from pgbaton.errors import PgbatonError
from pgbaton.replica.detach import detach, drop_source
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until

SCHEMA = [
    "CREATE TABLE parent (id int AUTO_INCREMENT PRIMARY KEY, code varchar(10) NOT NULL, UNIQUE KEY (code))",
    """CREATE TABLE child (id bigint AUTO_INCREMENT PRIMARY KEY, parent_id int, parent_code varchar(10),
       CONSTRAINT child_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE ON UPDATE CASCADE,
       CONSTRAINT child_code FOREIGN KEY (parent_code) REFERENCES parent (code) ON DELETE SET NULL)""",
]


def test_detach_makes_a_standalone_database(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, SCHEMA + ["INSERT INTO parent (code) VALUES ('a'), ('b'), ('c')",
                                      "INSERT INTO child (parent_id, parent_code) VALUES (1, 'a'), (2, 'b')",
                                      "ALTER TABLE parent AUTO_INCREMENT = 500"])
    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    with ReplicaThread(cfg):
        my_exec(mariadb, my_db, ["INSERT INTO child (parent_id, parent_code) VALUES (3, 'c'), (3, 'c')"])
        wait_until(lambda: caught_up(cfg), 30, "catch up")
        with pytest.raises(PgbatonError, match="stop it first"):
            detach(cfg, "src")
    res = detach(cfg, "src")
    assert res.removed and not res.warnings
    assert sorted(res.foreign_keys) == [f"{my_db}.child.child_code", f"{my_db}.child.child_parent"]
    assert sorted(res.sequences) == ["app.child.id", "app.parent.id"]
    with psycopg.connect(pg_db) as conn:
        fks = conn.execute("""SELECT conname, confupdtype, confdeltype, convalidated FROM pg_constraint
                               WHERE contype = 'f' AND conrelid = 'app.child'::regclass ORDER BY 1""").fetchall()
        assert fks == [("child_code", "r", "n", True), ("child_parent", "c", "c", True)]
        assert conn.execute("SELECT to_regclass('pgbaton.log_src')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM pgbaton.sources").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM pgbaton.tables").fetchone() == (0,)
        # new rows get ids after the copied ones (and past the source's AUTO_INCREMENT)
        row = conn.execute("INSERT INTO app.parent (code) VALUES ('d') RETURNING id").fetchone()
        assert row is not None and row[0] >= 500
        row = conn.execute("INSERT INTO app.child (parent_id) VALUES (1) RETURNING id").fetchone()
        assert row is not None and row[0] == 5
        conn.execute("DELETE FROM app.parent WHERE id = 3")      # cascades
        assert conn.execute("SELECT count(*) FROM app.child").fetchone() == (3,)
        with pytest.raises(psycopg.errors.ForeignKeyViolation):
            conn.execute("INSERT INTO app.child (parent_id) VALUES (999)")
    again = detach(cfg, "src")                   # rerun: nothing left to do
    assert not again.removed and not again.foreign_keys
    assert status(cfg, "src", probe_source=False)[0]["state"] == "not registered"


def test_drop_source_removes_catalog_objects(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, SCHEMA[:1] + ["INSERT INTO parent (code) VALUES ('a')"])
    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    assert drop_source(cfg, "src", drop_tables=True)
    assert not drop_source(cfg, "src", drop_tables=True)
    with psycopg.connect(pg_db) as conn:
        assert conn.execute("SELECT to_regclass('app.parent'), to_regclass('pgbaton.log_src')").fetchone() \
            == (None, None)
    add_source(cfg, "src")                      # the name can be used again
    init_replica(cfg, "src", show_progress=False)


def test_cli_sync_status_and_detach_confirmation(pg_db: str, my_db: str, mariadb: MariaDBServer,
                                                 tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from pgbaton.cli.main import app

    my_exec(mariadb, my_db, SCHEMA + ["INSERT INTO parent (code) VALUES ('a')"])
    cfg = make_config(pg_db, mariadb, my_db)
    path = tmp_path / "pgbaton.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, ["-c", str(path), *args])

    assert run("source", "add", "src").exit_code == 0
    assert run("replica", "init", "--source", "src", "--no-progress", "--json").exit_code == 0
    res = run("replica", "sync-tables", "--source", "src", "--tables", "parent", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["tables"] == [f"{my_db}.parent"]
    res = run("status", "--source", "src", "--json")
    tables = {t["source_table"]: t for t in json.loads(res.stdout)["tables"]}
    assert tables[f"{my_db}.parent"]["sync_position"] and tables[f"{my_db}.child"]["state"] == "replicating"
    res = run("replica", "detach", "--source", "src")          # no terminal to ask on: refused
    assert isinstance(res.exception, PgbatonError) and "--yes" in str(res.exception)
    assert run("replica", "detach", "--source", "src", "--yes").exit_code == 0
    res = run("replica", "detach", "--source", "src", "--yes")
    assert res.exit_code == 0 and "already detached" in res.output
