"""PostgreSQL 15 -> 18 switchover (and switchback) under load through PgBouncer: the longest client stall.

Starts its own PostgreSQL 15, PostgreSQL 18 and PgBouncer (transaction pooling) in a temp
folder on free loopback ports, creates N databases, runs ``migrate start``, then one client
thread per database doing small write transactions through PgBouncer while pgbaton switches
over and back.  Reports, per N: failed client transactions, the longest client transaction
(start to commit, reconnects included) during each switch, the executor's pause window and its
step times.  At the end PgBouncer is stopped by its PID, the servers with pg_ctl.

    .venv/bin/python bench/migrate_bench.py --dbs 1 5 10 [--tables 100] [--rounds 3] [--clients-per-db 1]
        [--json out.json]

``--tables N``: N tables per database (two busy ones, the rest small and idle, 100 rows each);
``--rounds R``: R switchover + switchback pairs per size, reported one by one and as medians.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from pgbaton.config import Config, parse_config
from pgbaton.migrate import execute
from pgbaton.migrate.finish import finish
from pgbaton.migrate.status import wait_synced
from pgbaton.migrate.switch_exec import SwitchFailed, SwitchResult, switchback, switchover
from pgbaton.sandbox.servers import PostgresServer, free_port, pg18_bin

SCHEMA = """
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, amount numeric(10,2), note text);
CREATE TABLE events (at timestamptz DEFAULT now(), payload jsonb);
INSERT INTO orders (amount, note) SELECT g, 'seed' FROM generate_series(1, 1000) g;
INSERT INTO events (payload) SELECT jsonb_build_object('i', g) FROM generate_series(1, 100) g;
"""
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


@dataclass
class Load:
    dsns: list[str]
    stop: threading.Event = field(default_factory=threading.Event)
    failures: list[str] = field(default_factory=list)
    done: int = 0
    window: list[float] = field(default_factory=list)  # latencies of transactions begun while measuring
    measuring: bool = False

    def _run(self, dsn: str) -> None:
        conn: psycopg.Connection | None = None
        while not self.stop.is_set():
            t0, measured = time.monotonic(), self.measuring
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
                with conn.transaction():
                    conn.execute("INSERT INTO orders (amount, note) VALUES (1, 'load')")
                    conn.execute("UPDATE events SET payload = payload || '{\"w\": 1}' "
                                 "WHERE ctid = (SELECT min(ctid) FROM events)")
                self.done += 1
            except psycopg.Error as exc:
                self.failures.append(str(exc).strip().splitlines()[0])
                if conn is not None:
                    conn.close()
                conn = None
            if measured or self.measuring:
                self.window.append(time.monotonic() - t0)
            time.sleep(0.002)
        if conn is not None:
            conn.close()

    def start(self, per_db: int) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._run, args=(d,), daemon=True) for d in self.dsns for _ in range(per_db)]
        for t in threads:
            t.start()
        return threads


def _bouncer(base: Path, dbs: list[str], source_port: int) -> tuple[int, int, Path]:
    port = free_port()
    entries = "".join(f"{db} = host=127.0.0.1 port={source_port} dbname={db}\n" for db in dbs)
    (base / "users.txt").write_text('"postgres" ""\n')
    ini = base / "pgbouncer.ini"
    ini.write_text(
        f"[databases]\n{entries}\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {base}/users.txt\nadmin_users = postgres\npool_mode = transaction\n"
        f"max_client_conn = 200\ndefault_pool_size = 10\nserver_reset_query =\n"
        f"ignore_startup_parameters = extra_float_digits\nlogfile = {base}/pgbouncer.log\n"
        f"pidfile = {base}/pgbouncer.pid\n")
    cmd = [PGBOUNCER, "-d", str(ini)]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    subprocess.run(cmd, check=True, capture_output=True, timeout=20)
    deadline = time.monotonic() + 10
    while True:
        try:
            pid = int((base / "pgbouncer.pid").read_text().split()[0])
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return port, pid, ini
        except (OSError, ValueError, IndexError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _switch(load: Load, fn: Any, config: Config, name: str) -> dict[str, Any]:
    load.window.clear()
    load.measuring = True
    failed_before = len(load.failures)
    try:
        res: SwitchResult = fn(config, name)
    except SwitchFailed as exc:  # rolled back: reported as not switched
        res = exc.result
    time.sleep(0.3)  # transactions held by the pause finish and are counted
    load.measuring = False
    return {"switched": res.switched, "reasons": res.reasons,
            "longest_stall_ms": round(max(load.window, default=0) * 1000, 1),
            "paused_ms": round((res.paused_seconds or 0) * 1000, 1), "failed": len(load.failures) - failed_before,
            "step_ms": {k: round(v * 1000, 1) for k, v in res.step_seconds.items()},
            # per database and step, as the executor timed it: where the pause goes
            "db_step_ms": {db: {k: round(v * 1000, 1) for k, v in steps.items()}
                           for db, steps in res.db_step_seconds.items()}}


def _profile(label: str, sw: dict[str, Any]) -> str:
    """One line: each step's wall time, and the slowest / fastest database in it."""
    parts = []
    for step, ms in sw["step_ms"].items():
        per_db = [d[step] for d in sw["db_step_ms"].values() if step in d]
        spread = f" [{min(per_db):.0f}-{max(per_db):.0f}]" if per_db else ""
        parts.append(f"{step} {ms:.0f}{spread}")
    return f"  {label}: stall {sw['longest_stall_ms']:.0f} ms, paused {sw['paused_ms']:.0f} ms: " + ", ".join(parts)


def _idle_tables(count: int) -> str:
    return "".join(f"CREATE TABLE idle_{i} (id int PRIMARY KEY, v text); "
                   f"INSERT INTO idle_{i} SELECT g, md5(g::text) FROM generate_series(1, 100) g;"
                   for i in range(count))


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def run(n: int, per_db: int, src: PostgresServer, tgt: PostgresServer, base: Path, tables: int = 2,
        rounds: int = 1) -> dict[str, Any]:
    name = f"bench{n}"
    dbs = [f"bench_{n}_{i}" for i in range(n)]
    with psycopg.connect(src.dsn(), autocommit=True) as c:
        for db in dbs:
            c.execute(f'CREATE DATABASE "{db}"')
    for db in dbs:
        with psycopg.connect(src.dsn(db), autocommit=True) as c:
            c.execute(SCHEMA + _idle_tables(max(0, tables - 2)))
    bdir = base / f"bouncer{n}"
    bdir.mkdir()
    bdir.chmod(0o1777)
    port, pid, ini = _bouncer(bdir, dbs, src.port)
    try:
        config = parse_config({"target": {"port": tgt.port}, "migrations": {name: {
            "source": {"port": src.port}, "target": {"port": tgt.port}, "databases": dbs,
            "options": {"bin_dir": str(pg18_bin())},
            "switch": {"method": "pgbouncer", "port": port, "user": "postgres", "ini_file": str(ini),
                       "timeout_seconds": 30}}}})
        load = Load([f"host=127.0.0.1 port={port} dbname={db} user=postgres connect_timeout=5" for db in dbs])
        threads = load.start(per_db)
        overs, backs = [], []
        try:
            began = time.monotonic()
            execute.start(config, name)
            wait_synced(config, name, timeout=1800)
            copy_s = round(time.monotonic() - began, 1)
            for _ in range(rounds):
                overs.append(_switch(load, switchover, config, name))
                wait_synced(config, name, timeout=120)  # the reverse stream streams and has caught up
                backs.append(_switch(load, switchback, config, name))
                wait_synced(config, name, timeout=120)
        finally:
            load.stop.set()
            for t in threads:
                t.join(10)
        finish(config, name)
        return {"databases": n, "tables_per_db": tables, "clients": n * per_db, "initial_copy_s": copy_s,
                "transactions": load.done, "failed_total": len(load.failures),
                "switchover": overs[-1], "switchback": backs[-1], "switchovers": overs, "switchbacks": backs,
                "median_switchover_stall_ms": _median([o["longest_stall_ms"] for o in overs]),
                "median_switchback_stall_ms": _median([b["longest_stall_ms"] for b in backs]),
                "all_switched": all(x["switched"] for x in overs + backs), "failures": load.failures[:5]}
    finally:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dbs", type=int, nargs="+", default=[1, 5])
    ap.add_argument("--clients-per-db", type=int, default=1)
    ap.add_argument("--tables", type=int, default=2, help="tables per database (at least the 2 busy ones)")
    ap.add_argument("--rounds", type=int, default=1, help="switchover + switchback pairs per size")
    ap.add_argument("--sync-workers", type=int, default=4, help="max_sync_workers_per_subscription")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--quiet", action="store_true", help="no JSON on stdout (only the summary lines)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="pgbaton-migbench-"))
    base.chmod(0o1777)
    most = max(args.dbs)
    # the initial copy of every database at once: an apply worker and up to 4 table copies each,
    # each copy with a slot and a walsender of its own
    sync = args.sync_workers
    # a table copy that fails (a worker or slot limit met under load) keeps its slot until it is
    # retried: with 1,000 tables copying, slots ran out at 100; room for one per table
    workers = {"max_logical_replication_workers": str(most * (1 + sync) + 4),
               "max_worker_processes": str(most * (1 + sync) + 16), "max_sync_workers_per_subscription": str(sync),
               "max_replication_slots": str(most * (args.tables + 2) + 20),
               "max_wal_senders": str(most * (1 + sync) * 2 + 20)}
    src = PostgresServer(base / "pg15", settings=workers)
    # PostgreSQL 18 bounds the origins in use (an apply worker and each table copy take one) by
    # max_active_replication_origins, 10 by default: 10 subscriptions left no room for a table copy
    origins = {"max_active_replication_origins": workers["max_logical_replication_workers"]}
    tgt = PostgresServer(base / "pg18", bin_dir=pg18_bin(), settings={**workers, **origins})
    results = []
    try:
        src.start()
        tgt.start()
        for n in args.dbs:
            r = run(n, args.clients_per_db, src, tgt, base, args.tables, args.rounds)
            results.append(r)
            overs = " / ".join(f"{o['longest_stall_ms']:.0f}" for o in r["switchovers"])
            backs = " / ".join(f"{b['longest_stall_ms']:.0f}" for b in r["switchbacks"])
            print(f"{n} database(s) x {r['tables_per_db']} tables, {r['clients']} client(s), initial copy "
                  f"{r['initial_copy_s']} s: switchover stall {overs} ms (median {r['median_switchover_stall_ms']}), "
                  f"switchback stall {backs} ms (median {r['median_switchback_stall_ms']}), failed "
                  f"{r['failed_total']} of {r['transactions']}, all switched: {r['all_switched']}", flush=True)
            for i, (o, b) in enumerate(zip(r["switchovers"], r["switchbacks"], strict=True)):
                print(_profile(f"switchover {i + 1}", o), flush=True)
                print(_profile(f"switchback {i + 1}", b), flush=True)
    finally:
        tgt.stop()
        src.stop()
        shutil.rmtree(base, ignore_errors=True)
    out = json.dumps(results, indent=2)
    if not args.quiet:
        print(out)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(out)


if __name__ == "__main__":
    main()
