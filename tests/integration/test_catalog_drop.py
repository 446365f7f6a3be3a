"""`catalog drop`: after the last source is gone the catalog can be removed, and only then."""

from __future__ import annotations

import psycopg
import pytest

from pgbaton.catalog import migrate
from pgbaton.errors import CatalogError
from pgbaton.replica import catalog as cat
from pgbaton.replica.detach import drop_source
from pgbaton.replica.init import add_source, init_replica
from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import make_config, my_exec


def test_catalog_drop_after_the_last_source(pg_db: str, my_db: str, mariadb: MariaDBServer) -> None:
    my_exec(mariadb, my_db, ["CREATE TABLE t (id int PRIMARY KEY)"])
    cfg = make_config(pg_db, mariadb, my_db)
    add_source(cfg, "src")
    init_replica(cfg, "src", show_progress=False)
    conn = cat.catalog_connection(cfg)
    try:
        with pytest.raises(CatalogError, match="still holds source.* src"):
            migrate.drop(conn, "pgbaton")
        conn.rollback()
        drop_source(cfg, "src")
        dropped = migrate.drop(conn, "pgbaton")
        assert "sources" in dropped and "schema pgbaton" in dropped
        assert migrate.drop(conn, "pgbaton") == []          # rerun: nothing left
    finally:
        conn.close()
    with psycopg.connect(pg_db) as c:
        assert c.execute("SELECT to_regnamespace('pgbaton')").fetchone() == (None,)
        # the replicated table stays
        assert c.execute("SELECT to_regclass('app.t') IS NOT NULL").fetchone() == (True,)


def test_catalog_drop_command(pg_db: str, my_db: str, mariadb: MariaDBServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys

    import yaml

    cfg = make_config(pg_db, mariadb, my_db)
    path = tmp_path / "pgbaton.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json", exclude_none=True)))
    add_source(cfg, "src")
    cmd = [sys.executable, "-m", "pgbaton", "-c", str(path), "catalog", "drop", "--json"]
    refused = subprocess.run([*cmd, "--yes"], capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "still holds source(s) src" in json.loads(refused.stdout)["error"]
    no_yes = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert no_yes.returncode == 1 and "--yes" in json.loads(no_yes.stdout)["error"]
    drop_source(cfg, "src")
    done = subprocess.run([*cmd, "--yes"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "schema pgbaton" in json.loads(done.stdout)["dropped"]
