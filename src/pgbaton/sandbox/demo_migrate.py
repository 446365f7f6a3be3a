"""The migration part of `make demo`: PostgreSQL 15 -> 18, several databases, clients
writing through PgBouncer the whole time, a switchover and a switchback.

The servers come from ``demo.py``; this module adds PgBouncer (transaction pooling) in
front of the PostgreSQL 15 databases, the client threads that measure every transaction,
and the story told with the real `pgbaton migrate` commands.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgbaton.sandbox.servers import PostgresServer, _pid_alive, free_port

DATABASES = ["billing", "inventory", "crm"]
MIGRATION = "upgrade"
SCHEMA = """
CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, owner text NOT NULL,
                       balance numeric(12,2) NOT NULL DEFAULT 0, updated timestamptz NOT NULL DEFAULT now());
CREATE TABLE ledger (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, account_id bigint NOT NULL,
                     amount numeric(12,2) NOT NULL, at timestamptz NOT NULL DEFAULT now(), memo jsonb);
INSERT INTO accounts (owner, balance) SELECT 'owner ' || g, g % 1000 FROM generate_series(1, 2000) g;
INSERT INTO ledger (account_id, amount, memo)
    SELECT 1 + g % 2000, g % 97, jsonb_build_object('seed', g) FROM generate_series(1, 20000) g;
"""


@dataclass
class Bouncer:
    port: int
    pid: int
    ini: Path


def start_bouncer(base: Path, source_port: int) -> Bouncer:
    """PgBouncer in front of the PostgreSQL 15 databases, as the postgres user (it refuses root)."""
    base.mkdir(parents=True, exist_ok=True)
    base.chmod(0o1777)
    port = free_port()
    entries = "".join(f"{db} = host=127.0.0.1 port={source_port} dbname={db}\n" for db in DATABASES)
    (base / "users.txt").write_text('"postgres" ""\n')
    ini = base / "pgbouncer.ini"
    ini.write_text(
        f"[databases]\n{entries}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {base}/users.txt\nadmin_users = postgres\npool_mode = transaction\n"
        f"max_client_conn = 100\ndefault_pool_size = 5\nserver_reset_query =\n"
        f"ignore_startup_parameters = extra_float_digits\nlogfile = {base}/pgbouncer.log\n"
        f"pidfile = {base}/pgbouncer.pid\n")
    ini.chmod(0o666)  # pgbaton rewrites its [databases] at the switch
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    cmd = [binary, "-d", str(ini)]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)
    deadline = time.monotonic() + 10
    while True:
        try:
            pid = int((base / "pgbouncer.pid").read_text().split()[0])
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return Bouncer(port, pid, ini)
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def stop_pid(pid: int, timeout: float = 10) -> None:
    if not pid or not _pid_alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + timeout
    while _pid_alive(pid) and time.monotonic() < end:
        time.sleep(0.05)


def create_databases(pg15: PostgresServer) -> None:
    with psycopg.connect(pg15.dsn(), autocommit=True) as conn:
        for db in DATABASES:
            conn.execute(f'CREATE DATABASE "{db}"')
    for db in DATABASES:
        with psycopg.connect(pg15.dsn(db), autocommit=True) as conn:
            conn.execute(SCHEMA)


def migration_config(pg15: PostgresServer, pg18: PostgresServer, bouncer: Bouncer) -> dict[str, Any]:
    return {MIGRATION: {
        "source": {"host": "127.0.0.1", "port": pg15.port, "user": "postgres"},
        "target": {"host": "127.0.0.1", "port": pg18.port, "user": "postgres"},
        "databases": DATABASES,
        "options": {"bin_dir": str(pg18.bin_dir)},
        "switch": {"method": "pgbouncer", "host": "127.0.0.1", "port": bouncer.port, "user": "postgres",
                   "ini_file": str(bouncer.ini), "timeout_seconds": 30},
    }}


@dataclass
class Clients:
    """One client per database writing small transactions through PgBouncer; every
    transaction is timed (connect included) and every failure kept."""

    port: int
    stop: threading.Event = field(default_factory=threading.Event)
    committed: int = 0
    failures: list[str] = field(default_factory=list)
    window: list[float] = field(default_factory=list)
    measuring: bool = False
    threads: list[threading.Thread] = field(default_factory=list)

    def _run(self, db: str) -> None:
        dsn = f"host=127.0.0.1 port={self.port} dbname={db} user=postgres connect_timeout=10"
        conn: psycopg.Connection | None = None
        n = 0
        while not self.stop.is_set():
            t0, measured = time.monotonic(), self.measuring
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
                n += 1
                with conn.transaction():
                    conn.execute("INSERT INTO ledger (account_id, amount, memo) VALUES (%s, 1, '{\"by\": \"client\"}')",
                                 (1 + n % 2000,))
                    conn.execute("UPDATE accounts SET balance = balance + 1, updated = now() WHERE id = %s",
                                 (1 + n % 2000,))
                self.committed += 1
            except psycopg.Error as exc:
                self.failures.append(f"{db}: {(str(exc).strip().splitlines() or ['error'])[0]}")
                if conn is not None:
                    conn.close()
                conn = None
            if measured or self.measuring:
                self.window.append(time.monotonic() - t0)
            time.sleep(0.005)
        if conn is not None:
            conn.close()

    def start(self) -> None:
        for db in DATABASES:
            t = threading.Thread(target=self._run, args=(db,), name=f"client-{db}", daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(15)

    def measure(self, action: Callable[[], Any]) -> tuple[Any, float, int]:
        """Run ``action``; returns its result, the longest client transaction during it, and
        how many client transactions failed during it."""
        self.window.clear()
        failed_before = len(self.failures)
        self.measuring = True
        try:
            result = action()
            time.sleep(0.3)   # transactions the pause held finish and are counted
        finally:
            self.measuring = False
        return result, max(self.window, default=0.0), len(self.failures) - failed_before


def _switch(pgbaton: Callable[..., subprocess.CompletedProcess[str]], cfg: Path, clients: Clients,
            command: str) -> dict[str, Any]:
    proc, stall, failed = clients.measure(lambda: pgbaton(cfg, "migrate", command, MIGRATION, "--json",
                                                          check=False, capture=True))
    try:
        res: dict[str, Any] = json.loads(proc.stdout)
    except ValueError:
        raise SystemExit(f"demo: `migrate {command}` printed no JSON:\n{proc.stdout}\n{proc.stderr}") from None
    res["client_stall_s"] = round(stall, 3)
    res["client_failed"] = failed
    (cfg.parent / f"{command}.json").write_text(json.dumps(res, indent=2))
    done = "switched over to PostgreSQL 18" if command == "switchover" else "switched back to PostgreSQL 15"
    if not res.get("switched"):
        raise SystemExit(f"demo: {command} did not happen: {res.get('reasons') or res.get('error')}")
    paused = res.get("paused_seconds")
    print(f"demo: {done}: clients paused {paused if paused is not None else '-'} s by pgbaton; longest client "
          f"transaction during the switch {stall * 1000:.0f} ms; {failed} failed transactions", flush=True)
    return res


def _counts(server: PostgresServer) -> dict[str, tuple[int, int, str]]:
    """Per database: ledger rows, the accounts' balance sum, and a digest of every row of both tables."""
    out = {}
    for db in DATABASES:
        with psycopg.connect(server.dsn(db)) as conn:
            conn.execute("SET TimeZone = 'UTC'")
            row = conn.execute("SELECT (SELECT count(*) FROM ledger), (SELECT sum(balance)::bigint FROM accounts),"
                               " md5((SELECT string_agg(a::text, E'\\n' ORDER BY id) FROM accounts a)"
                               " || (SELECT string_agg(l::text, E'\\n' ORDER BY id) FROM ledger l))").fetchone()
            assert row is not None
            out[db] = (int(row[0]), int(row[1]), str(row[2]))
    return out


def _wait_synced(cfg_path: Path, timeout: float = 120) -> None:
    from pgbaton.config import load_config
    from pgbaton.migrate.status import wait_synced

    wait_synced(load_config(cfg_path), MIGRATION, timeout=timeout)


def run_migration(base: Path, cfg: Path, pg15: PostgresServer, pg18: PostgresServer, bouncer: Bouncer,
                  pgbaton: Callable[..., subprocess.CompletedProcess[str]]) -> dict[str, Any]:
    """The story: check, start, clients on, switchover, switchback, equal data, finish."""
    print(f"\ndemo: part 2, PostgreSQL 15 -> 18: databases {', '.join(DATABASES)} on PostgreSQL 15, "
          f"clients through PgBouncer 127.0.0.1:{bouncer.port}", flush=True)
    clients = Clients(bouncer.port)
    clients.start()
    run_pid = base / "migrate-run.pid"
    try:
        pgbaton(cfg, "migrate", "check", MIGRATION)
        pgbaton(cfg, "migrate", "start", MIGRATION, "--wait")
        pgbaton(cfg, "migrate", "run", MIGRATION, "--daemon", "--pid-file", str(run_pid),
                "--log-file", str(base / "migrate-run.log"))
        pgbaton(cfg, "migrate", "status", MIGRATION)
        time.sleep(1.0)                         # clients write through PgBouncer onto PostgreSQL 15
        print("\n$ pgbaton migrate switchover upgrade --json   (clients keep writing)", flush=True)
        over = _switch(pgbaton, cfg, clients, "switchover")
        _wait_synced(cfg)                       # the reverse stream (18 -> 15) has caught up
        pgbaton(cfg, "migrate", "status", MIGRATION)
        time.sleep(1.0)                         # clients write on PostgreSQL 18 for a moment
        print("\n$ pgbaton migrate switchback upgrade --json   (clients keep writing)", flush=True)
        back = _switch(pgbaton, cfg, clients, "switchback")
        time.sleep(0.5)
    finally:
        clients.finish()
    _wait_synced(cfg)
    on15, on18 = _counts(pg15), _counts(pg18)
    for db in DATABASES:
        same = "every row equal" if on15[db] == on18[db] else "ROWS DIFFER"
        print(f"demo: {db}: {on15[db][0]:,} ledger rows, balance sum {on15[db][1]:,} on PostgreSQL 15; "
              f"{on18[db][0]:,} / {on18[db][1]:,} on PostgreSQL 18; {same} (md5 of all rows {on15[db][2][:12]})",
              flush=True)
    if on15 != on18:
        raise SystemExit("demo: PostgreSQL 15 and 18 differ after the switchback")
    if run_pid.exists():
        pgbaton(cfg, "migrate", "stop", MIGRATION, "--pid-file", str(run_pid), check=False)
    print(f"\n$ pgbaton migrate finish {MIGRATION} --yes --json", flush=True)
    removed = json.loads(pgbaton(cfg, "migrate", "finish", MIGRATION, "--yes", "--json", capture=True).stdout)
    print(f"demo: migration finished: {len(removed['removed'])} objects removed (slots, publications, "
          "subscriptions, DDL capture, catalog rows); PostgreSQL 18 now stands alone", flush=True)
    total_failed = len(clients.failures)
    print(f"\ndemo: {clients.committed:,} client transactions committed through PgBouncer, "
          f"{total_failed} failed; longest stall {over['client_stall_s'] * 1000:.0f} ms at the switchover, "
          f"{back['client_stall_s'] * 1000:.0f} ms at the switchback; both sides equal.", flush=True)
    for f in clients.failures[:5]:
        print(f"  failed: {f}", flush=True)
    return {"switchover": over, "switchback": back, "committed": clients.committed, "failed": total_failed}


def pgbaton_runner(timings: Path | None = None) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs a real `pgbaton` command, echoing it as a shell line (and its duration into ``timings``)."""

    def run(cfg: Path, *args: str, check: bool = True, capture: bool = False) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "pgbaton", "-c", str(cfg), *args]
        if not capture:
            print(f"\n$ pgbaton {' '.join(args)}", flush=True)
        t0 = time.monotonic()
        proc = subprocess.run(cmd, text=True, check=False, capture_output=capture)
        if timings is not None:
            with open(timings, "a", encoding="utf-8") as fh:
                fh.write(f"{time.monotonic() - t0:7.2f} s  pgbaton {' '.join(args)}\n")
        if check and proc.returncode != 0:
            detail = f"\n{proc.stdout}\n{proc.stderr}" if capture else ""
            raise SystemExit(f"demo: `pgbaton {' '.join(args)}` failed with exit code {proc.returncode}{detail}")
        return proc

    return run
