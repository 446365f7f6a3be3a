"""Fixtures for PostgreSQL 15 -> 18 migrations on the session's shared servers."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import typer
from typer.testing import CliRunner, Result

from pgbaton.config import Config, parse_config
from pgbaton.sandbox.servers import PostgresServer, pg18_bin


@dataclass
class Migration:
    name: str
    databases: list[str]
    config: Config
    source: PostgresServer
    target: PostgresServer


def _drop_leftovers(server: PostgresServer, databases: list[str]) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        for db in databases:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                with psycopg.connect(server.dsn(db), autocommit=True) as dbc:
                    dbc.execute("SET default_transaction_read_only = off")  # a source frozen by switchover
                    for (sub,) in dbc.execute("SELECT subname FROM pg_subscription s JOIN pg_database d "
                                              "ON d.oid = s.subdbid AND d.datname = current_database()").fetchall():
                        dbc.execute(f'ALTER SUBSCRIPTION "{sub}" DISABLE')
                        dbc.execute(f'ALTER SUBSCRIPTION "{sub}" SET (slot_name = NONE)')
                        dbc.execute(f'DROP SUBSCRIPTION "{sub}"')
        # every slot of these databases (ours and table-sync ones), or DROP DATABASE refuses
        for _ in range(50):
            rows = conn.execute("SELECT slot_name, active_pid FROM pg_replication_slots WHERE database = ANY(%s)",
                                (databases,)).fetchall()
            if not rows:
                break
            for slot, pid in rows:
                if pid is not None:
                    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
                else:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            time.sleep(0.1)
        for db in databases:
            conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def start_synced(m: Migration, schema: str, timeout: float = 60.0) -> None:
    """``schema`` in every source database, then `migrate start`, waiting until all are synced."""
    from pgbaton.migrate import execute
    from pgbaton.migrate.status import wait_synced

    for db in m.databases:
        with psycopg.connect(m.source.dsn(db), autocommit=True) as c:
            c.execute(schema)
    execute.start(m.config, m.name)
    wait_synced(m.config, m.name, timeout=timeout)


CLIENT = "mig_client"  # a client's own user: pgbaton's (postgres here) stays read-write where a stream runs


def client_dsn(server: PostgresServer, db: str) -> str:
    """A session of a client that is not pgbaton's user (made on first use, superuser)."""
    with psycopg.connect(server.dsn(), autocommit=True) as c:
        if c.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (CLIENT,)).fetchone() is None:
            try:
                c.execute(f'CREATE ROLE "{CLIENT}" LOGIN SUPERUSER')
            except (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation):
                pass
    return server.dsn(db, user=CLIENT)


@pytest.fixture
def migration(pg15: PostgresServer, pg18: PostgresServer) -> Iterator[Migration]:
    """Three fresh databases on PostgreSQL 15 and a migration of them to PostgreSQL 18."""
    tag = uuid.uuid4().hex[:8]
    name = f"m{tag}"
    dbs = [f"mig_{tag}_{i}" for i in range(3)]
    with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
        for db in dbs:
            conn.execute(f'CREATE DATABASE "{db}"')
    cfg = parse_config({
        "target": {"port": pg18.port},
        "migrations": {name: {
            "source": {"port": pg15.port}, "target": {"port": pg18.port}, "databases": dbs,
            "options": {"bin_dir": str(pg18_bin())},
        }},
    })
    yield Migration(name, dbs, cfg, pg15, pg18)
    _drop_leftovers(pg18, dbs)
    _drop_leftovers(pg15, dbs)
    with psycopg.connect(pg18.dsn(), autocommit=True) as conn:  # a test that did not finish its migration
        if conn.execute("SELECT to_regclass('pgbaton_migrate.migration')").fetchone() != (None,):
            conn.execute("DELETE FROM pgbaton_migrate.migration WHERE name = %s", (name,))
            if conn.execute("SELECT count(*) FROM pgbaton_migrate.migration").fetchone() == (0,):
                conn.execute("DROP SCHEMA pgbaton_migrate CASCADE")


@pytest.fixture
def run_cli(migration: Migration, tmp_path: Path) -> Callable[..., Result]:
    """Run `migrate ...` as the lead will mount it (pgbaton -c FILE migrate ...)."""
    import yaml

    from pgbaton.cli import main as cli_main
    from pgbaton.cli.migrate import app as migrate_app

    cfg_file = tmp_path / "pgbaton.yaml"
    cfg_file.write_text(yaml.safe_dump(migration.config.model_dump(mode="json", exclude_none=True)))
    root = typer.Typer()

    @root.callback()
    def _opts() -> None:
        cli_main.state.config_path = cfg_file
        cli_main.state._config = None

    root.add_typer(migrate_app, name="migrate")

    def run(*args: str) -> Result:
        # the runner mixes stderr into .output: keep pgbaton's log lines (a handler an earlier
        # in-process CLI call may have installed) out of the JSON the tests parse
        root_logger = logging.getLogger()
        ours = [h for h in root_logger.handlers if getattr(h, "_pgbaton", False)]
        for h in ours:
            root_logger.removeHandler(h)
        try:
            return CliRunner().invoke(root, ["migrate", *args], catch_exceptions=False)
        finally:
            for h in ours:
                root_logger.addHandler(h)

    return run
