"""Switchover through a real PgBouncer under load: PostgreSQL 15 -> 18 and the reverse stream back."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from typer.testing import Result

from pgbaton.config import ClusterConfig, parse_config
from pgbaton.errors import PgbatonError
from pgbaton.migrate import execute
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.names import object_name
from pgbaton.migrate.status import wait_synced
from pgbaton.migrate.switch_exec import switchover
from pgbaton.migrate.switchers import Switcher, switcher_for
from pgbaton.migrate.switchover import Action
from pgbaton.sandbox.servers import free_port
from tests.migrate.conftest import Migration, client_dsn

SCHEMA = """
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount numeric(10,2), note text);
CREATE SEQUENCE ticket_seq;
CREATE TABLE tickets (id bigint PRIMARY KEY DEFAULT nextval('ticket_seq'), body text);
CREATE TABLE events (at timestamptz DEFAULT now(), payload jsonb);  -- no primary key
INSERT INTO orders (amount, note) SELECT g, 'seed' FROM generate_series(1, 200) g;
INSERT INTO tickets (body) SELECT 'seed' FROM generate_series(1, 50);
INSERT INTO events (payload) SELECT jsonb_build_object('i', g) FROM generate_series(1, 20) g;
"""
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed")


@dataclass
class Bouncer:
    base: Path
    port: int
    pid: int

    @property
    def ini(self) -> Path:
        return self.base / "pgbouncer.ini"

    def dsn(self, db: str) -> str:
        return f"host=127.0.0.1 port={self.port} dbname={db} user=postgres connect_timeout=5"


def _start_bouncer(m: Migration) -> Bouncer:
    base = Path(tempfile.mkdtemp(prefix="pgbaton-bouncer-"))
    base.chmod(0o1777)
    port = free_port()
    entries = "".join(f"{db} = host=127.0.0.1 port={m.source.port} dbname={db}\n" for db in m.databases)
    (base / "users.txt").write_text('"postgres" ""\n')
    (base / "pgbouncer.ini").write_text(
        f"[databases]\n{entries}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"unix_socket_dir =\nauth_type = trust\nauth_file = {base}/users.txt\nadmin_users = postgres\n"
        f"pool_mode = transaction\nmax_client_conn = 200\ndefault_pool_size = 10\n"
        f"server_reset_query =\nignore_startup_parameters = extra_float_digits\n"
        f"logfile = {base}/pgbouncer.log\npidfile = {base}/pgbouncer.pid\n")
    cmd = [PGBOUNCER, "-d", str(base / "pgbouncer.ini")]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)
    deadline = time.monotonic() + 10
    while True:
        try:
            pid = int((base / "pgbouncer.pid").read_text().split()[0])
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Bouncer(base, port, pid)
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _stop_bouncer(b: Bouncer) -> None:
    try:
        os.kill(b.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{b.pid}").exists():
        time.sleep(0.05)
    shutil.rmtree(b.base, ignore_errors=True)


@dataclass
class BouncedMigration(Migration):
    bouncer: Bouncer | None = None


@pytest.fixture
def migration(migration: Migration) -> Iterator[BouncedMigration]:
    """The shared 3-database migration, its clients going through a PgBouncer of this test."""
    yield from bounced(migration)


def bounced(migration: Migration) -> Iterator[BouncedMigration]:
    """The body of the fixture above (test_switchback.py overrides ``migration`` with it too)."""
    for db in migration.databases:
        with psycopg.connect(migration.source.dsn(db), autocommit=True) as c:
            c.execute(SCHEMA)
    bouncer = _start_bouncer(migration)
    raw = migration.config.model_dump(mode="json", exclude_none=True)
    raw["migrations"][migration.name]["switch"] = {
        "method": "pgbouncer", "port": bouncer.port, "user": "postgres", "ini_file": str(bouncer.ini),
        "timeout_seconds": 20}
    m = BouncedMigration(migration.name, migration.databases, parse_config(raw), migration.source,
                         migration.target, bouncer)
    try:
        yield m
    finally:
        _stop_bouncer(bouncer)
        with psycopg.connect(m.target.dsn(), autocommit=True) as t:
            Catalog(t, "pgbaton_migrate", m.name).forget()


@dataclass
class Load:
    """Small transactions through PgBouncer, one thread per database, from before start to after switchover."""

    dsns: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)
    done: int = 0
    longest: float = 0.0
    phase: str = "before"
    threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, dsn: str) -> None:
        conn: psycopg.Connection | None = None
        while not self.stop.is_set():
            t0 = time.monotonic()
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
                with conn.transaction():
                    conn.execute("INSERT INTO orders (amount, note) VALUES (1, %s)", (self.phase,))
                    conn.execute("INSERT INTO tickets (body) VALUES (%s)", (self.phase,))
                    conn.execute("UPDATE events SET payload = payload || jsonb_build_object('w', %s::text) "
                                 "WHERE ctid = (SELECT min(ctid) FROM events)", (self.phase,))
                self.done += 1
            except psycopg.Error as exc:
                self.failures.append(f"{self.phase}: {exc}")
                if conn is not None:
                    conn.close()
                conn = None
            self.longest = max(self.longest, time.monotonic() - t0)
            time.sleep(0.002)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._run, args=(d,), daemon=True) for d in self.dsns]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)


def _fingerprint(dsn: str, bounds: dict[str, int] | None = None) -> dict[str, tuple[int, str]]:
    """Count and md5 per table; with ``bounds``, only those tables and rows up to that id."""
    out = {}
    with psycopg.connect(dsn) as c:
        for t in bounds or ("orders", "tickets", "events"):
            where = f"WHERE id <= {int(bounds[t])}" if bounds else ""
            row = c.execute(f"SELECT count(*), coalesce(md5(string_agg(x::text, ',' ORDER BY x::text)), '') "
                            f"FROM {t} x {where}").fetchone()
            assert row is not None
            out[t] = (row[0], row[1])
    return out


def _wait_reverse_applied(m: Migration, timeout: float = 20) -> None:
    """Until the source has confirmed every reverse slot up to the target's current position."""
    with psycopg.connect(m.target.dsn(), autocommit=True) as t:
        row = t.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        assert row is not None
        deadline = time.monotonic() + timeout
        slots = [object_name(m.name, db, "rev") for db in m.databases]
        while True:
            behind = t.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = ANY(%s) "
                               "AND (confirmed_flush_lsn IS NULL OR confirmed_flush_lsn < %s::pg_lsn)",
                               (slots, row[0])).fetchone()
            if behind == (0,):
                return
            assert time.monotonic() < deadline, "reverse replication did not catch up"
            time.sleep(0.1)


def test_switchover_under_load_through_pgbouncer(
        migration: BouncedMigration, run_cli: Callable[..., Result]) -> None:
    m = migration
    assert m.bouncer is not None
    with Load([m.bouncer.dsn(db) for db in m.databases]) as load:
        execute.start(m.config, m.name)
        wait_synced(m.config, m.name, timeout=40)
        load.phase = "during"
        res = run_cli("switchover", m.name, "--json")
        assert res.exit_code == 0, res.output
        out = json.loads(res.output)
        load.phase = "after"
        before_after = load.done
        time.sleep(1.0)
        assert load.done > before_after + 20  # clients go on, on the target now
    print(f"\nswitchover: {load.done} transactions, longest client stall {load.longest * 1000:.0f} ms, "
          f"clients paused {out['paused_seconds'] * 1000:.0f} ms by the executor; steps {out['step_seconds']}")
    assert load.failures == []
    assert out["switched"] and out["steps"] == [a.value for a in Action]
    assert f"port={m.target.port}" in m.bouncer.ini.read_text()

    _wait_reverse_applied(m)
    for db in m.databases:
        with psycopg.connect(m.target.dsn(db)) as t:
            row = t.execute("SELECT count(*) FROM orders WHERE note = 'after'").fetchone()
            assert row is not None and row[0] > 0  # written on the target after the switch
        assert _fingerprint(m.source.dsn(db)) == _fingerprint(m.target.dsn(db))  # and flowed back
        with psycopg.connect(m.source.dsn(db)) as s, psycopg.connect(m.target.dsn(db)) as t:
            for seq, table in (("orders_id_seq", "orders"), ("ticket_seq", "tickets")):
                tgt = t.execute(f"SELECT last_value, (SELECT max(id) FROM {table}) FROM {seq}").fetchone()
                src = s.execute(f"SELECT last_value FROM {seq}").fetchone()
                assert tgt is not None and src is not None and tgt[0] >= src[0] and tgt[0] >= tgt[1]
        with psycopg.connect(client_dsn(m.source, db)) as s, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            s.execute("INSERT INTO orders (amount) VALUES (1)")  # the old primary stays frozen
        with psycopg.connect(m.source.dsn(db)) as s:  # but for pgbaton's user: the stream back runs as it
            assert s.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
    again = run_cli("switchover", m.name, "--json")
    assert again.exit_code == 0 and json.loads(again.output)["steps"] == []
    with pytest.raises(Exception, match="switchover was done"):
        execute.abort(m.config, m.name)


class Crash(BaseException):
    """The process dies in the middle of a step: nothing after it runs, no rollback."""


class CrashAfterPointing:
    def __init__(self, inner: Switcher) -> None:
        self.inner = inner

    def pause(self, dbs: list[str], on_deadline: Callable[[list[str]], None] | None = None) -> None:
        self.inner.pause(dbs, on_deadline)

    def point_to(self, cluster: ClusterConfig, dbs: list[str]) -> None:
        self.inner.point_to(cluster, dbs)  # the ini is rewritten and reloaded, clients still paused
        raise Crash

    def resume(self, dbs: list[str]) -> None:
        self.inner.resume(dbs)


def _objects(m: Migration, direction: str) -> list[str]:
    found = []
    for db in m.databases:
        obj = object_name(m.name, db, direction)
        for server in (m.source, m.target):
            with psycopg.connect(server.dsn(db)) as c:
                found += [f"{server.port}:pub:{r[0]}" for r in c.execute(
                    "SELECT pubname FROM pg_publication WHERE pubname = %s", (obj,)).fetchall()]
                found += [f"{server.port}:sub:{r[0]}" for r in c.execute(
                    "SELECT subname FROM pg_subscription WHERE subname = %s", (obj,)).fetchall()]
                found += [f"{server.port}:slot:{r[0]}" for r in c.execute(
                    "SELECT slot_name FROM pg_replication_slots WHERE slot_name = %s", (obj,)).fetchall()]
    return sorted(found)


def _assert_back_on_source(m: BouncedMigration, load: Load) -> None:
    from tests.migrate.test_finish import _privileges

    assert m.bouncer is not None
    assert f"port={m.source.port}" in m.bouncer.ini.read_text()
    assert _objects(m, "rev") == []
    assert _privileges(m) == []  # no role, no role setting of pgbaton left by the rollback
    assert len(_objects(m, "fwd")) == 3 * len(m.databases)  # publication, slot, subscription each
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db), autocommit=True) as s:
            s.execute("INSERT INTO events (payload) VALUES ('{\"direct\": 1}')")  # writable again
    done = load.done
    time.sleep(0.5)
    assert load.done > done + 10  # clients resumed, on the source
    # the forward stream carries on: every row committed before the wait is on the target
    # (events is updated all the time by the load: compared once the load has stopped)
    bounds = {}
    for db in m.databases:
        with psycopg.connect(m.source.dsn(db)) as s:
            bounds[db] = {t: s.execute(f"SELECT max(id) FROM {t}").fetchone()[0]  # type: ignore[index]
                          for t in ("orders", "tickets")}
    wait_synced(m.config, m.name, timeout=30)
    for db in m.databases:
        assert _fingerprint(m.source.dsn(db), bounds[db]) == _fingerprint(m.target.dsn(db), bounds[db])


def test_failed_and_crashed_switchover_roll_back_then_switch(
        migration: BouncedMigration, run_cli: Callable[..., Result]) -> None:
    m = migration
    assert m.bouncer is not None
    with Load([m.bouncer.dsn(db) for db in m.databases]) as load:
        execute.start(m.config, m.name)
        wait_synced(m.config, m.name, timeout=40)

        # a step fails: everything begun is undone at once
        with pytest.raises(PgbatonError, match="failed at point_switcher.*drop_reverse, "
                                               "unfreeze_source, resume_clients"):
            switchover(m.config, m.name, fail_at=Action.point_switcher)
        _assert_back_on_source(m, load)

        # the process dies after PgBouncer was pointed at the target, clients still paused
        cfg = m.config.migration(m.name)
        with pytest.raises(Crash):
            switchover(m.config, m.name, switcher=CrashAfterPointing(switcher_for(cfg)))
        assert f"port={m.target.port}" in m.bouncer.ini.read_text()
        res = run_cli("switchover", m.name, "--json")  # the rerun rolls it back
        assert res.exit_code == 1, res.output
        out = json.loads(res.output)
        assert not out["switched"] and "rolled back" in out["reasons"][0]
        assert out["rolled_back"] == ["drop_reverse", "unfreeze_source", "resume_clients"]
        _assert_back_on_source(m, load)

        res = run_cli("switchover", m.name)  # and now for real
        assert res.exit_code == 0 and "switched over" in res.output, res.output
        time.sleep(0.5)
    assert load.failures == []
    assert f"port={m.target.port}" in m.bouncer.ini.read_text()
    assert _objects(m, "fwd") == []
    _wait_reverse_applied(m)
    for db in m.databases:
        assert _fingerprint(m.source.dsn(db)) == _fingerprint(m.target.dsn(db))
