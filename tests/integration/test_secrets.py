"""Passwords come from the environment or a file, work everywhere, and are never shown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pymysql
import yaml

from pgbaton.sandbox.servers import MariaDBServer

from .replica_helpers import make_config, my_exec

SECRET = "s3cr3t-Pa55-word"


def test_password_from_env_and_file_never_printed(pg_db: str, my_db: str, mariadb: MariaDBServer,
                                                  sandbox_root: Path) -> None:
    user = f"rep_{my_db[-6:]}"
    conn = pymysql.connect(**mariadb.connect_args(), autocommit=True)  # type: ignore[arg-type]
    with conn.cursor() as cur:
        cur.execute(f"CREATE USER '{user}'@'127.0.0.1' IDENTIFIED BY '{SECRET}'")
        cur.execute(f"GRANT SELECT, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR "
                    f"ON *.* TO '{user}'@'127.0.0.1'")
    conn.close()
    my_exec(mariadb, my_db, ["CREATE TABLE t (id int PRIMARY KEY, v varchar(10))", "INSERT INTO t VALUES (1, 'a')"])
    cfg = make_config(pg_db, mariadb, my_db).model_dump(mode="json", exclude_none=True)
    cfg["sources"]["src"]["user"] = user
    pwfile = sandbox_root / f"{user}.pw"
    pwfile.write_text(SECRET + "\n")
    runs = {"env": {"password_env": "PGB_TEST_SECRET"}, "file": {"password_file": str(pwfile)}}
    for name, how in runs.items():
        cfg["sources"]["src"].pop("password_env", None)
        cfg["sources"]["src"].pop("password_file", None)
        cfg["sources"]["src"].update(how)
        path = sandbox_root / f"{user}-{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        env = {"PGB_TEST_SECRET": SECRET, "PATH": "/usr/bin:/bin"}
        outputs = []
        for args in (["source", "add", "src"], ["replica", "init", "--source", "src", "--force", "--no-progress"],
                     ["status", "--json"], ["--debug", "replica", "verify", "--source", "src"]):
            proc = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(path), *args], capture_output=True,
                                  text=True, env=env, timeout=120)
            outputs.append(proc.stdout + proc.stderr)
            assert proc.returncode == 0, (name, args, proc.stdout, proc.stderr)
        assert "equal" in outputs[-1]
        assert not any(SECRET in o for o in outputs), name
    # a wrong password gives a clean error without the password
    cfg["sources"]["src"].pop("password_file", None)
    cfg["sources"]["src"]["password_env"] = "PGB_TEST_SECRET"
    path = sandbox_root / f"{user}-wrong.yaml"
    path.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(path), "source", "add", "src"],
                          capture_output=True, text=True, env={"PGB_TEST_SECRET": "wrong-" + SECRET}, timeout=60)
    assert proc.returncode == 1 and "cannot connect to the source" in proc.stderr
    assert SECRET not in proc.stderr and "Traceback" not in proc.stderr
