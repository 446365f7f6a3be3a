"""The documented grants are enough: init, CDC with cascades, status and detach as a user
with exactly SELECT, RELOAD, REPLICATION SLAVE and BINLOG MONITOR (REPLICATION CLIENT)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import yaml
from pydantic import SecretStr

from pgbaton.config import Config
from pgbaton.replica.detach import detach
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import status
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import ReplicaThread, caught_up, make_config, my_exec, wait_until
from .test_ops_detach import SCHEMA
from .test_replica_txn import assert_same


def test_documented_grants_are_enough(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    user, password = f"repl_{uuid.uuid4().hex[:8]}", "s3cret-Pw"
    with mariadb.connect() as c, c.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'%'")
    my_exec(mariadb, my_db, SCHEMA + ["INSERT INTO parent (code) VALUES ('a'), ('b'), ('c')",
                                      "INSERT INTO child (parent_id, parent_code) VALUES (1, 'a'), (2, 'b'), (3, 'c')"])
    cfg = make_config(pg_db, mariadb, my_db)
    cfg.sources["src"] = cfg.sources["src"].model_copy(update={"user": user, "password": SecretStr(password)})
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    with ReplicaThread(cfg) as rt:
        my_exec(mariadb, my_db, ["DELETE FROM parent WHERE id = 1", "UPDATE parent SET id = 20 WHERE id = 2",
                                 "DELETE FROM parent WHERE code = 'c'"])
        wait_until(lambda: caught_up(cfg), 30, "catch up")
        assert rt.error is None
        st = status(cfg, "src")[0]
        # the actions were read although REFERENTIAL_CONSTRAINTS hides them from this user
        assert len(st["cascading_foreign_keys"]) == 2, st["cascading_foreign_keys"]
    assert_same(mariadb, my_db, pg_db, ["parent", "child"])
    res = detach(cfg, "src")
    assert sorted(res.foreign_keys) == [f"{my_db}.child.child_code", f"{my_db}.child.child_parent"], res.warnings
    with psycopg.connect(pg_db) as conn:
        fks = conn.execute("""SELECT conname, confupdtype, confdeltype FROM pg_constraint
                               WHERE contype = 'f' AND conrelid = 'app.child'::regclass ORDER BY 1""").fetchall()
        assert fks == [("child_code", "r", "n"), ("child_parent", "c", "c")]


def _cli(cfg: Config, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "pgbaton.yaml"
    data = cfg.model_dump(mode="json", exclude_none=True)
    for s in data["sources"].values():          # model_dump hides secrets: pass the password on
        if "password" in s:
            s["password"] = cfg.sources["src"].password.get_secret_value()  # type: ignore[union-attr]
    path.write_text(yaml.safe_dump(data))
    return subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(path), *args], capture_output=True,
                          text=True, timeout=120)


def test_missing_grants_named(pg_db: str, my_db: str, mariadb: MariaDBServer, tmp_path: Path) -> None:
    """`source add` names each missing source grant; a target permission error names the
    target user, the object and the GRANT (JSON included)."""
    user, password = f"weak_{uuid.uuid4().hex[:8]}", "s3cret-Pw"
    with mariadb.connect() as c, c.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'")
        cur.execute(f"GRANT SELECT ON `{my_db}`.* TO '{user}'@'%'")
    cfg = make_config(pg_db, mariadb, my_db)
    cfg.sources["src"] = cfg.sources["src"].model_copy(update={"user": user, "password": SecretStr(password)})
    proc = _cli(cfg, tmp_path, "source", "add", "src", "--json")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)
    assert "REPLICATION SLAVE" in doc["error"] and "BINLOG MONITOR" in doc["error"] and "RELOAD" in doc["error"]
    assert f"GRANT REPLICATION SLAVE ON *.* TO '{user}'" in doc["error"]
    assert password not in proc.stdout + proc.stderr

    # the target: a role that may connect but not create schemas in the database
    role = f"weak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_db, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{role}" LOGIN')
        dbname = conn.info.dbname
    cfg = make_config(pg_db, mariadb, my_db)
    cfg = cfg.model_copy(update={"target": cfg.target.model_copy(update={"user": role})})
    proc = _cli(cfg, tmp_path, "source", "add", "src", "--json")
    assert proc.returncode == 1, proc.stdout
    doc = json.loads(proc.stdout)
    assert doc["type"] == "PrivilegeError", doc
    assert doc["error"].startswith(f"target PostgreSQL user {role}: permission denied for database {dbname}"), doc
    assert f"GRANT CREATE ON DATABASE {dbname} TO {role}" in doc["error"], doc
    proc = _cli(cfg, tmp_path, "source", "add", "src")
    assert f"user {role}" in proc.stderr and "Traceback" not in proc.stderr
