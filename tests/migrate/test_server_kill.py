"""Faults of the servers themselves: kill -9 of the source PostgreSQL, of the target PostgreSQL or
of PgBouncer right after a switchover step did its work, then restart it and rerun the switch.

Servers of this module's own (a kill must not hit the session's shared ones), clients through
PgBouncer recording every transaction they saw committed.  After each round: the migration
settles (switched over, or rolled back to streaming) and every committed row is on the primary;
at the end both sides hold every committed row.  ``PGBATON_SERVER_KILL_STEPS`` = steps per server
(seeded by ``PGBATON_SEED``; all steps with ``all``).
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
_STEPS = os.environ.get("PGBATON_SERVER_KILL_STEPS", "3")
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
    with psycopg.connect(s.dsn(db)) as c:
        return {r[0] for r in c.execute("SELECT k FROM ledger").fetchall()}


def _state(m: Migration) -> State:
    with psycopg.connect(m.target.dsn(), autocommit=True) as t:
        return Catalog(t, "pgbaton_migrate", m.name).state()


def _points(server: str) -> list[str]:
    if _STEPS == "all":
        return STEPS
    rng = random.Random(f"{SEED}-{server}")
    return rng.sample(STEPS, min(int(_STEPS), len(STEPS)))


@pytest.mark.parametrize("victim", ["source", "target", "pgbouncer"])
def test_kill_a_server_at_switchover_steps_then_rerun(own_servers: tuple[PostgresServer, PostgresServer],
                                                      victim: str) -> None:
    src, tgt = own_servers
    tag = uuid.uuid4().hex[:6]
    dbs = [f"kill_{tag}_{i}" for i in range(2)]
    with psycopg.connect(src.dsn(), autocommit=True) as c:
        for db in dbs:
            c.execute(f'CREATE DATABASE "{db}"')
    for db in dbs:
        with psycopg.connect(src.dsn(db), autocommit=True) as c:
            c.execute("CREATE TABLE ledger (k text PRIMARY KEY, at timestamptz DEFAULT now())")
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
            wait_synced(m.config, m.name, timeout=60)
            for step in _points(victim):
                point = f"switchover:{step}:after"

                def fault(at: str, point: str = point) -> None:
                    if at == point:
                        kill()

                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(switch_exec, "_fault", fault)
                    try:
                        res = switchover(m.config, m.name)
                        first = f"switched={res.switched}"
                    except (PgbatonError, psycopg.Error) as exc:
                        first = f"failed: {str(exc).splitlines()[0][:160]}"
                restart()
                for _ in range(3):  # a rerun settles it (the first may still meet a recovering server)
                    try:
                        switchover(m.config, m.name)
                        break
                    except (PgbatonError, psycopg.Error) as exc:
                        log.append(f"  rerun failed: {str(exc).splitlines()[0][:160]}")
                        time.sleep(1)
                state = _state(m)
                log.append(f"{victim} killed after {step}: {first}; rerun -> {state.value}")
                assert state in (State.switched, State.streaming, State.switched_back), log
                primary = tgt if state is State.switched else src
                time.sleep(0.5)
                for db in dbs:
                    seen = set(rec.committed[db])  # before reading the server: the clients go on
                    missing = seen - _keys(primary, db)
                    assert not missing, (log, db, sorted(missing)[:5])  # 0 committed rows lost
                if state is State.switched:
                    wait_synced(m.config, m.name, timeout=60)
                    assert switchback(m.config, m.name).switched, log
                wait_synced(m.config, m.name, timeout=60)
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
