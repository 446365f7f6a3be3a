"""Faults of the servers themselves: kill -9 of the source PostgreSQL, of the target PostgreSQL or
of PgBouncer right after a switchover or switchback step did its work, then restart it and rerun
the switch.

Servers of this module's own (a kill must not hit the session's shared ones), clients through
PgBouncer recording every transaction they saw committed; each transaction writes three tables
(a ledger row, an audit row, its client's counter).  After each round: the migration settles
(switched, or rolled back to where the switch began) and every committed row of every table is on
the primary, checked row by row against the clients' record; at the end both sides hold every
committed row and nothing that was never sent.

``PGBATON_SERVER_KILL_STEPS`` = steps per server and direction, drawn with ``PGBATON_SEED``
(default 2); the full sweep, every step of both directions for each server:

    PGBATON_SERVER_KILL_STEPS=all .venv/bin/pytest tests/migrate/test_server_kill.py
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest

from pgbaton.config import parse_config
from pgbaton.errors import PgbatonError
from pgbaton.migrate import execute, switch_exec
from pgbaton.migrate.catalog import Catalog
from pgbaton.migrate.finish import finish
from pgbaton.migrate.lifecycle import State
from pgbaton.migrate.status import wait_synced
from pgbaton.migrate.switch_exec import switchback, switchover
from pgbaton.migrate.switchover import ORDER
from pgbaton.sandbox.servers import PostgresServer, pg18_bin
from tests.migrate.conftest import Migration, _drop_leftovers
from tests.migrate.test_finish import _leftovers
from tests.migrate.test_switchover import PGBOUNCER, Bouncer, _start_bouncer, _stop_bouncer

pytestmark = pytest.mark.skipif(not os.path.exists(PGBOUNCER), reason="pgbouncer is not installed")
SEED = int(os.environ.get("PGBATON_SEED", "20261202"))
_STEPS = os.environ.get("PGBATON_SERVER_KILL_STEPS", "2")
STEPS = [a.value for a in ORDER]


@pytest.fixture(scope="module")
def own_servers() -> Iterator[tuple[PostgresServer, PostgresServer]]:
    base = Path(tempfile.mkdtemp(prefix="pgbaton-kill-"))
    base.chmod(0o1777)
    src, tgt = PostgresServer(base / "pg15"), PostgresServer(base / "pg18", bin_dir=pg18_bin())
    src.start()
    tgt.start()
    yield src, tgt
    for s in (src, tgt):
        if _alive(s):
            s.stop()
    shutil.rmtree(base, ignore_errors=True)


def _alive(s: PostgresServer) -> bool:
    try:
        psycopg.connect(s.dsn(), connect_timeout=2).close()
        return True
    except psycopg.OperationalError:
        return False


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _kill_server(s: PostgresServer) -> None:
    """SIGKILL the postmaster this module started and its backends, as a crash would."""
    assert s.pid is not None
    victims = [s.pid, *_children(s.pid)]
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 20
    while any(_running(p) for p in victims) and time.monotonic() < deadline:
        time.sleep(0.05)


def _postmaster(s: PostgresServer) -> int | None:
    """The PID of a postmaster running on ``s``'s data directory, if any."""
    try:
        pid = int((s.datadir / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if _running(pid) else None


def _restart_server(s: PostgresServer) -> None:
    deadline = time.monotonic() + 90
    while True:
        pid = _postmaster(s)
        if pid is not None and _alive(s):  # up (an earlier attempt that pg_ctl gave up on came up after all)
            s.pid = pid
            return
        if pid is None:
            try:
                s.start()
                return
            except Exception:
                pass
        if time.monotonic() > deadline:
            raise AssertionError(f"PostgreSQL on port {s.port} did not come back")
        time.sleep(0.5)


def _restart_bouncer(b: Bouncer) -> None:
    cmd = [PGBOUNCER, "-d", str(b.ini)]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    (b.base / "pgbouncer.pid").unlink(missing_ok=True)
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)
    deadline = time.monotonic() + 10
    while True:
        try:
            b.pid = int((b.base / "pgbouncer.pid").read_text().split()[0])
            socket.create_connection(("127.0.0.1", b.port), timeout=1).close()
            return
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@dataclass
class Recorder:
    """One client per database through PgBouncer; every key it saw committed, and those in doubt."""

    dsns: dict[str, str]
    stop: threading.Event = field(default_factory=threading.Event)
    committed: dict[str, set[str]] = field(default_factory=dict)
    in_doubt: dict[str, set[str]] = field(default_factory=dict)
    failures: int = 0
    threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, db: str) -> None:
        conn: psycopg.Connection | None = None
        seq = 0
        while not self.stop.is_set():
            seq += 1
            key = f"{db}-{seq}"
            sent = False
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsns[db], autocommit=True, prepare_threshold=None,
                                           connect_timeout=3)
                sent = True
                with conn.transaction():  # flushed at commit (the sandbox runs synchronous_commit = off)
                    conn.execute("SET LOCAL synchronous_commit = on")
                    conn.execute("INSERT INTO ledger (k) VALUES (%s)", (key,))
                    conn.execute("INSERT INTO audit (k, seq) VALUES (%s, %s)", (key, seq))
                    conn.execute("INSERT INTO counter (client, n) VALUES ('c', 1) "
                                 "ON CONFLICT (client) DO UPDATE SET n = counter.n + 1")
                self.committed[db].add(key)
            except psycopg.Error:
                self.failures += 1
                if sent:
                    self.in_doubt[db].add(key)  # the server may have committed it before the link broke
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
            time.sleep(0.003)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Recorder:
        for db in self.dsns:
            self.committed[db], self.in_doubt[db] = set(), set()
            self.threads.append(threading.Thread(target=self._run, args=(db,), daemon=True))
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)


def _keys(s: PostgresServer, db: str) -> set[str]:
    """The ledger's keys, after checking that the audit table holds the same ones (same seq) and the
    counter counts them: each transaction wrote all three or none."""
    with psycopg.connect(s.dsn(db)) as c:
        c.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ  # one snapshot: the clients go on writing
        ledger = {r[0] for r in c.execute("SELECT k FROM ledger").fetchall()}
        audit = {r[0] for r in c.execute("SELECT k FROM audit WHERE k = %s || '-' || seq", (db,)).fetchall()}
        row = c.execute("SELECT coalesce(sum(n), 0), (SELECT count(*) FROM audit) FROM counter").fetchone()
    assert audit == ledger, (db, sorted(audit ^ ledger)[:5])
    assert row is not None and row[0] == row[1] == len(ledger), (db, row, len(ledger))
    return ledger


def _state(m: Migration) -> State:
    with psycopg.connect(m.target.dsn(), autocommit=True) as t:
        return Catalog(t, "pgbaton_migrate", m.name).state()


def _caught_up(m: Migration, log: list[str]) -> None:
    """``wait_synced``, failing with what happened so far."""
    try:
        wait_synced(m.config, m.name, timeout=60)
    except PgbatonError as exc:
        subs = {}
        for side, server in (("source", m.source), ("target", m.target)):
            with psycopg.connect(server.dsn()) as c:
                subs[side] = c.execute("SELECT subname, subenabled, (SELECT datname FROM pg_database d "
                                       "WHERE d.oid = subdbid) FROM pg_subscription").fetchall()
                subs[side + " slots"] = c.execute("SELECT slot_name, active FROM pg_replication_slots").fetchall()
        raise AssertionError(f"{exc}; state {_state(m).value}; {subs}; " + "; ".join(log)) from None


def _points(server: str, direction: str) -> list[str]:
    if _STEPS == "all":
        return STEPS
    if not _STEPS.isdigit():  # named steps, to replay a failure: PGBATON_SERVER_KILL_STEPS=point_switcher,...
        return [step for step in _STEPS.split(",") if step in STEPS]
    rng = random.Random(f"{SEED}-{server}" if direction == "switchover" else f"{SEED}-{server}-{direction}")
    return rng.sample(STEPS, min(int(_STEPS), len(STEPS)))


@pytest.mark.parametrize("direction", ["switchover", "switchback"])
@pytest.mark.parametrize("victim", ["source", "target", "pgbouncer"])
def test_kill_a_server_at_switch_steps_then_rerun(own_servers: tuple[PostgresServer, PostgresServer],
                                                  victim: str, direction: str) -> None:
    src, tgt = own_servers
    tag = uuid.uuid4().hex[:6]
    dbs = [f"kill_{tag}_{i}" for i in range(2)]
    with psycopg.connect(src.dsn(), autocommit=True) as c:
        for db in dbs:
            c.execute(f'CREATE DATABASE "{db}"')
    for db in dbs:
        with psycopg.connect(src.dsn(db), autocommit=True) as c:
            c.execute("CREATE TABLE ledger (k text PRIMARY KEY, at timestamptz DEFAULT now());"
                      "CREATE TABLE audit (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k text NOT NULL "
                      "UNIQUE, seq int NOT NULL);"
                      "CREATE TABLE counter (client text PRIMARY KEY, n bigint NOT NULL)")
    name = f"k{tag}"
    raw = {"migrations": {name: {"source": {"port": src.port}, "target": {"port": tgt.port}, "databases": dbs,
                                 "options": {"bin_dir": str(pg18_bin())}}}}
    m = Migration(name, dbs, parse_config(raw), src, tgt)
    bouncer = _start_bouncer(m)
    raw["migrations"][name]["switch"] = {  # type: ignore[index]
        "method": "pgbouncer", "port": bouncer.port, "user": "postgres", "ini_file": str(bouncer.ini),
        "timeout_seconds": 20, "pause_timeout_seconds": 5}
    m.config = parse_config(raw)
    kill: Callable[[], None] = {"source": lambda: _kill_server(src), "target": lambda: _kill_server(tgt),
                                "pgbouncer": lambda: os.kill(bouncer.pid, signal.SIGKILL)}[victim]
    restart: Callable[[], None] = {"source": lambda: _restart_server(src), "target": lambda: _restart_server(tgt),
                                   "pgbouncer": lambda: _restart_bouncer(bouncer)}[victim]
    log: list[str] = []
    try:
        with Recorder({db: bouncer.dsn(db) for db in dbs}) as rec:
            execute.start(m.config, m.name)
            _caught_up(m, log)
            switch, other = (switchover, switchback) if direction == "switchover" else (switchback, switchover)
            for step in _points(victim, direction):
                if direction == "switchback" and _state(m) is not State.switched:
                    assert switchover(m.config, m.name).switched, log  # the switchback begins switched over
                    _caught_up(m, log)
                point = f"{direction}:{step}:after"

                def fault(at: str, point: str = point) -> None:
                    if at == point:
                        kill()

                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(switch_exec, "_fault", fault)
                    try:
                        res = switch(m.config, m.name)
                        first = f"switched={res.switched}"
                    except (PgbatonError, psycopg.Error) as exc:
                        first = f"failed: {str(exc).splitlines()[0][:160]}"
                restart()
                for _ in range(3):  # a rerun settles it (the first may still meet a recovering server)
                    try:
                        switch(m.config, m.name)
                        break
                    except (PgbatonError, psycopg.Error) as exc:
                        log.append(f"  rerun failed: {str(exc).splitlines()[0][:160]}")
                        time.sleep(1)
                state = _state(m)
                log.append(f"{victim} killed after {direction} {step}: {first}; rerun -> {state.value}")
                settled = (State.switched, State.streaming, State.switched_back) if direction == "switchover" \
                    else (State.switched_back, State.switched)
                assert state in settled, log
                primary = tgt if state is State.switched else src
                time.sleep(0.5)
                for db in dbs:
                    seen = set(rec.committed[db])  # before reading the server: the clients go on
                    missing = seen - _keys(primary, db)
                    if missing:  # where are they? (the side that is not the primary, or nowhere)
                        elsewhere = missing & _keys(src if primary is tgt else tgt, db)
                        raise AssertionError(f"{db}: {len(missing)} committed row(s) not on the primary, "
                                             f"{len(elsewhere)} of them on the other side: {sorted(missing)[:5]}; "
                                             + "; ".join(log))
                _caught_up(m, log)
                if direction == "switchover" and state is State.switched:
                    assert other(m.config, m.name).switched, log
                    _caught_up(m, log)
            if _state(m) is State.switched:  # a switchback rolled back last: back to the source
                assert switchback(m.config, m.name).switched, log
                _caught_up(m, log)
        _caught_up(m, log)  # the clients' last transactions on both sides
        for db in dbs:
            on_source, on_target = _keys(src, db), _keys(tgt, db)
            assert rec.committed[db] <= on_source and on_source == on_target, (log, db)
            assert on_source <= rec.committed[db] | rec.in_doubt[db], (log, db)  # nothing that was never sent
        print("\n" + "\n".join(log) + f"\nclient transactions failed while a server was down: {rec.failures}")
        finish(m.config, m.name)
        assert _leftovers(m) == []
    finally:
        _stop_bouncer(bouncer)
        for s in (src, tgt):
            if not _alive(s):
                _restart_server(s)
        with psycopg.connect(tgt.dsn(), autocommit=True) as t:
            if Catalog(t, "pgbaton_migrate", m.name).exists():  # whatever state a failure left
                t.execute("DELETE FROM pgbaton_migrate.migration WHERE name = %s", (m.name,))
        _drop_leftovers(tgt, dbs)
        _drop_leftovers(src, dbs)
