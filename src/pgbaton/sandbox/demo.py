"""`make demo`: the whole story in a private sandbox, with the real `pgbaton` commands.

    python -m pgbaton.sandbox.demo run   --dir .demo [--rows 20000] [--seconds 6] [--keep-running]
                                         [--part all|replica|migrate]
    python -m pgbaton.sandbox.demo clean --dir .demo

It starts its own MariaDB (ROW binlog), PostgreSQL 15, PostgreSQL 18 and PgBouncer under
DIR on free loopback ports, and `pgbaton serve` (whose status page URL it prints first).

1. The replica: a sample shop on MariaDB, `source add`, `replica init`, `replica start
   --daemon`, orders written while it runs, `status`, and `replica verify` proving that the
   target equals the source.
2. The migration (sandbox/demo_migrate.py): three databases on PostgreSQL 15 with clients
   writing through PgBouncer the whole time, `migrate check | start --wait | run --daemon`,
   a switchover to PostgreSQL 18 and a switchback, each with the clients' longest stall and
   failed transactions printed, both sides compared, `migrate finish`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml

from pgbaton.sandbox import demo_migrate
from pgbaton.sandbox.servers import MariaDBServer, PostgresServer, _pid_alive, pg18_bin

SCHEMA = [
    """CREATE TABLE customers (
         id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
         email varchar(120) NOT NULL UNIQUE,
         name varchar(80) CHARACTER SET utf8mb4 NOT NULL,
         vip tinyint(1) NOT NULL DEFAULT 0,
         created datetime(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3))""",
    """CREATE TABLE products (
         sku char(8) NOT NULL PRIMARY KEY,
         title varchar(200) NOT NULL,
         price decimal(10,2) NOT NULL,
         stock mediumint unsigned NOT NULL DEFAULT 0,
         kind enum('book','music','toy') NOT NULL,
         tags set('new','sale','gift'),
         attrs json,
         photo blob)""",
    """CREATE TABLE orders (
         id bigint unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
         customer_id int unsigned NOT NULL,
         placed timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
         shipped date,
         total decimal(12,2) NOT NULL DEFAULT 0,
         note text,
         KEY by_customer (customer_id))""",
    """CREATE TABLE order_items (
         order_id bigint unsigned NOT NULL,
         line smallint NOT NULL,
         sku char(8) NOT NULL,
         qty int NOT NULL,
         PRIMARY KEY (order_id, line))""",
    """CREATE TABLE audit_log (at datetime NOT NULL, who varchar(40), what varchar(200))""",
]


def _load(my: MariaDBServer, rows: int) -> None:
    conn = my.connect()
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE shop CHARACTER SET utf8mb4")
        cur.execute("USE shop")
        for stmt in SCHEMA:
            cur.execute(stmt)
        n = max(rows, 100)
        cur.execute(f"""INSERT INTO customers (email, name, vip, created)
                        SELECT concat('user', seq, '@example.org'), concat('Kundin ', seq, ' ✓'), seq % 7 = 0,
                               '2024-01-01' + INTERVAL seq MINUTE FROM seq_1_to_{n}""")
        cur.execute(f"""INSERT INTO products (sku, title, price, stock, kind, tags, attrs, photo)
                        SELECT lpad(seq, 8, '0'), concat('Product\t', seq), seq % 1000 + 0.99, seq % 500,
                               elt(1 + seq % 3, 'book', 'music', 'toy'), if(seq % 4 = 0, 'new,sale', ''),
                               json_object('w', seq % 13, 'ok', seq % 2 = 0), unhex(lpad(hex(seq), 8, '0'))
                        FROM seq_1_to_{n // 10}""")
        cur.execute(f"""INSERT INTO orders (customer_id, placed, shipped, total, note)
                        SELECT 1 + seq % {n}, '2024-02-01' + INTERVAL seq SECOND,
                               if(seq % 3 = 0, NULL, '2024-03-01'), seq % 300 + 0.5, if(seq % 5 = 0, 'gift\nwrap', NULL)
                        FROM seq_1_to_{n}""")
        cur.execute(f"""INSERT INTO order_items
                        SELECT 1 + seq DIV 3, seq % 3, lpad(1 + seq % {n // 10}, 8, '0'), 1 + seq % 4
                        FROM seq_0_to_{n * 3 - 1}""")
        cur.execute("INSERT INTO audit_log VALUES (now(), 'demo', 'loaded'), (now(), 'demo', 'loaded')")
    conn.close()


class Writer(threading.Thread):
    """Application traffic on MariaDB while the replica runs."""

    def __init__(self, my: MariaDBServer, seconds: float) -> None:
        super().__init__(daemon=True)
        self.my = my
        self.seconds = seconds
        self.transactions = 0

    def run(self) -> None:
        rnd = random.Random(1)
        conn = self.my.connect("shop", autocommit=False)
        end = time.monotonic() + self.seconds
        try:
            with conn.cursor() as cur:
                while time.monotonic() < end:
                    cur.execute("INSERT INTO orders (customer_id, total, note) VALUES (%s, %s, 'live')",
                                (rnd.randrange(1, 100), rnd.randrange(1, 10**5) / 100))
                    oid = cur.lastrowid
                    cur.execute("INSERT INTO order_items VALUES (%s, 0, '00000001', 2), (%s, 1, '00000002', 1)",
                                (oid, oid))
                    cur.execute("UPDATE products SET stock = IF(stock > 0, stock - 1, 99), tags = 'sale' "
                                "WHERE sku = %s", (f"{rnd.randrange(1, 10):08d}",))
                    if rnd.random() < 0.2:
                        cur.execute("DELETE FROM order_items WHERE order_id = %s AND line = 1", (oid,))
                    if rnd.random() < 0.05:
                        cur.execute("UPDATE customers SET id = id + 1000000 WHERE id = %s",
                                    (rnd.randrange(1, 100),))
                    cur.execute("INSERT INTO audit_log VALUES (now(), 'app', 'order')")
                    conn.commit()
                    self.transactions += 1
        finally:
            conn.close()


_pgbaton = demo_migrate.pgbaton_runner(timings=Path(os.environ["PGBATON_DEMO_TIMINGS"])
                                       if os.environ.get("PGBATON_DEMO_TIMINGS") else None)


def _start_serve(base: Path, cfg: Path) -> tuple[subprocess.Popen[str], str]:
    """`pgbaton serve` on a free loopback port; returns the process and the page's URL."""
    log = open(base / "serve.log", "w", encoding="utf-8")  # kept open as long as the server runs
    proc = subprocess.Popen([sys.executable, "-m", "pgbaton", "-c", str(cfg), "serve", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=log, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "status page" not in line:
        raise SystemExit(f"demo: `pgbaton serve` did not start (see {base / 'serve.log'})")
    return proc, line.split("status page", 1)[1].split()[0]


def _page_says(url: str) -> None:
    """What the status page's data says about the replica right now (proves it is served)."""
    import urllib.request

    with urllib.request.urlopen(url + "api/status", timeout=30) as resp:
        doc = json.loads(resp.read())
    for s in doc["sources"]:
        st = s["status"]
        print(f"demo: the status page shows source {s['name']} {st['state']}, {st['rows_replayed']:,} rows "
              f"replayed, {st['pending_events']} pending, {len(s['tables'])} tables", flush=True)


def _state(base: Path, **values: object) -> None:
    path = base / "state.json"
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(values)
    path.write_text(json.dumps(data))


def run(base: Path, rows: int, seconds: float, keep_running: bool, part: str = "all") -> None:
    started = time.monotonic()
    if (base / "state.json").exists():
        clean(base)
    base.mkdir(parents=True, exist_ok=True)
    base = base.resolve()
    my = MariaDBServer(base / "mariadb")
    pg = PostgresServer(base / "postgres")
    pg18 = PostgresServer(base / "postgres18", bin_dir=pg18_bin())
    print(f"demo: starting a private MariaDB, PostgreSQL 15, PostgreSQL 18 and PgBouncer under {base}", flush=True)
    my.start()
    _state(base, mariadb_pid=my.pid, mariadb_port=my.port)
    pg.start()
    _state(base, postgres_dir=str(pg.datadir), postgres_port=pg.port)
    pg18.start()
    _state(base, postgres18_dir=str(pg18.datadir), postgres18_port=pg18.port)
    bouncer = demo_migrate.start_bouncer(base / "pgbouncer", pg.port)
    _state(base, pgbouncer_pid=bouncer.pid)
    pid_file = base / "replica.pid"
    cfg = base / "pgbaton.yaml"
    serve: subprocess.Popen[str] | None = None
    try:
        subprocess.run([str(pg.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(pg.port), "-U", "postgres",
                        "shop"], check=True)
        demo_migrate.create_databases(pg)
        cfg.write_text(yaml.safe_dump({
            "target": {"host": "127.0.0.1", "port": pg.port, "dbname": "shop", "user": "postgres"},
            "sources": {"shop": {"type": "mariadb", "host": "127.0.0.1", "port": my.port, "user": "root",
                                 "server_id": 4242, "databases": {"shop": "shop"}, "copy_workers": 2}},
            "migrations": demo_migrate.migration_config(pg, pg18, bouncer),
            "observe": {"sample_seconds": 1, "ha_nodes": {}},
        }, sort_keys=False))
        serve, url = _start_serve(base, cfg)
        _state(base, serve_pid=serve.pid)
        print(f"\ndemo: watch it live: {url}   (Prometheus metrics: {url}metrics)", flush=True)
        if part in ("all", "replica"):
            t0 = time.monotonic()
            _replica_part(base, cfg, my, rows, seconds, pid_file)
            _page_says(url)
            print(f"demo: part 1 took {time.monotonic() - t0:.0f} s", flush=True)
        if part in ("all", "migrate"):
            t0 = time.monotonic()
            demo_migrate.run_migration(base, cfg, pg, pg18, bouncer, _pgbaton)
            print(f"demo: part 2 took {time.monotonic() - t0:.0f} s", flush=True)
        print(f"\ndemo: done in {time.monotonic() - started:.0f} s.", flush=True)
    finally:
        if not keep_running:
            if pid_file.exists():
                _pgbaton(cfg, "replica", "stop", "--source", "shop", "--pid-file", str(pid_file), check=False)
            if (base / "migrate-run.pid").exists():
                demo_migrate.stop_pid(int((base / "migrate-run.pid").read_text().split()[0]))
            if serve is not None:
                serve.terminate()
                serve.wait(10)
            demo_migrate.stop_pid(bouncer.pid)
            my.stop()
            pg.stop()
            pg18.stop()
            print(f"demo: servers stopped; files kept in {base} (`make demo-clean` removes them)")
        else:
            print(f"demo: still running: MariaDB 127.0.0.1:{my.port}, PostgreSQL 15 127.0.0.1:{pg.port}, "
                  f"PostgreSQL 18 127.0.0.1:{pg18.port}, PgBouncer 127.0.0.1:{bouncer.port}, config {cfg}; "
                  "`make demo-clean` stops and removes everything")


def _replica_part(base: Path, cfg: Path, my: MariaDBServer, rows: int, seconds: float, pid_file: Path) -> None:
    print(f"\ndemo: part 1, MariaDB -> PostgreSQL: loading the sample shop database ({rows:,} customers and "
          "orders)", flush=True)
    _load(my, rows)
    _pgbaton(cfg, "source", "add", "shop")
    _pgbaton(cfg, "replica", "init", "--source", "shop")
    _pgbaton(cfg, "replica", "start", "--source", "shop", "--daemon", "--pid-file", str(pid_file),
             "--log-file", str(base / "replica.log"))
    print(f"\ndemo: writing orders on MariaDB for {seconds:.0f} s while the replica runs", flush=True)
    writer = Writer(my, seconds)
    writer.start()
    time.sleep(seconds / 2)
    _pgbaton(cfg, "status")
    writer.join()
    print(f"demo: {writer.transactions:,} transactions written; waiting for the replica to catch up", flush=True)
    _wait_caught_up(cfg)
    _pgbaton(cfg, "status", "--source", "shop")
    result = _pgbaton(cfg, "replica", "verify", "--source", "shop", check=False)
    if result.returncode != 0:
        raise SystemExit("demo: the target does NOT equal the source (see above)")
    print("\ndemo: the PostgreSQL replica equals the MariaDB source, table by table.", flush=True)


def _wait_caught_up(cfg: Path, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        out = subprocess.run([sys.executable, "-m", "pgbaton", "-c", str(cfg), "status", "--source", "shop",
                              "--json"], capture_output=True, text=True, check=False)
        if out.returncode == 0:
            st = json.loads(out.stdout)
            if st["read_lag_s"] == 0 and st["pending_events"] == 0:
                return
        time.sleep(0.2)
    raise SystemExit("demo: the replica did not catch up within two minutes; see replica.log")


def _postmaster(datadir: str | None) -> int:
    pidfile = Path(datadir) / "postmaster.pid" if datadir else None
    if pidfile is None or not pidfile.exists():
        return 0
    try:
        return int(pidfile.read_text().split()[0])
    except (ValueError, IndexError):
        return 0


def clean(base: Path) -> None:
    """Stop what a demo left running (by the PIDs it recorded) and remove its folder."""
    state_file = base / "state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        pids = []
        for pid_file in (base / "replica.pid", base / "migrate-run.pid"):
            if pid_file.exists():
                pids.append(int(pid_file.read_text().split()[0]))
        pids += [int(state.get(k) or 0) for k in ("serve_pid", "pgbouncer_pid", "mariadb_pid")]
        pids += [_postmaster(state.get(k)) for k in ("postgres_dir", "postgres18_dir")]
        for pid in pids:
            if pid and _pid_alive(pid):
                os.kill(pid, 15)
        for _ in range(100):
            if not any(p and _pid_alive(p) for p in pids):
                break
            time.sleep(0.1)
    shutil.rmtree(base, ignore_errors=True)
    print(f"demo: removed {base}")


def main() -> None:
    ap = argparse.ArgumentParser(prog="pgbaton-demo")
    ap.add_argument("action", choices=["run", "clean"])
    ap.add_argument("--dir", type=Path, default=Path(".demo"))
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--keep-running", action="store_true")
    ap.add_argument("--part", choices=["all", "replica", "migrate"], default="all")
    args = ap.parse_args()
    if args.action == "run":
        run(args.dir, args.rows, args.seconds, args.keep_running, args.part)
    else:
        clean(args.dir)


if __name__ == "__main__":
    main()
