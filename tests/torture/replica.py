"""Torture run of the MySQL/MariaDB -> PostgreSQL replica: random workload, faults, exact oracle.

    .venv/bin/python -m tests.torture.replica --seed 1 --iterations 20 [--gtid] [--dir DIR]

Each iteration: a fresh source database and target database, `replica init`, then a
`pgbaton replica start` process (with its supervisor) follows while a seeded random
workload runs on MariaDB: multi-table transactions, savepoints and ROLLBACK TO them,
whole rollbacks, XA transactions prepared and committed or rolled back later
(interleaved with others), key moves and swaps, delete and reinsert of a key in one
transaction, keyless tables with duplicate rows, MyISAM writes inside transactions,
transactions larger than a batch, foreign key cascades, binlog rotations.  Between
steps, faults hit at random: kill -9 of the replica process, kill -9 of the target
PostgreSQL, a restart of MariaDB, KILL of the binlog dump thread, `replica stop` and
start.  At the end every table is compared row by row (as multisets) with the source.

The same seed gives the same workload and the same faults (timing aside).  A
divergent iteration prints its seed; keep it as a regression test.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pymysql

from pgbaton.config import parse_config
from pgbaton.replica.init import add_source, init_replica
from pgbaton.replica.status import errors, status, table_status
from pgbaton.sandbox.servers import MariaDBServer, PostgresServer, _pid_alive

SCHEMA = [
    "CREATE TABLE acc (id int PRIMARY KEY, v int, s varchar(20)) ENGINE=InnoDB",
    "CREATE TABLE kl (a int, b varchar(20)) ENGINE=InnoDB",
    "CREATE TABLE my (id int PRIMARY KEY, v int) ENGINE=MyISAM",
    "CREATE TABLE xat (id int PRIMARY KEY, v int, s varchar(20)) ENGINE=InnoDB",
    "CREATE TABLE par (id int PRIMARY KEY, v int) ENGINE=InnoDB",
    """CREATE TABLE chi (id int PRIMARY KEY, pid int, v int,
         CONSTRAINT chi_par FOREIGN KEY (pid) REFERENCES par (id) ON DELETE CASCADE ON UPDATE CASCADE)
       ENGINE=InnoDB""",
    """CREATE TABLE gch (id int PRIMARY KEY, cid int, pid int,
         CONSTRAINT gch_chi FOREIGN KEY (cid) REFERENCES chi (id) ON DELETE SET NULL ON UPDATE CASCADE,
         CONSTRAINT gch_par FOREIGN KEY (pid) REFERENCES par (id) ON DELETE CASCADE)
       ENGINE=InnoDB""",
    """CREATE TABLE tree (id int PRIMARY KEY, up int,
         CONSTRAINT tree_up FOREIGN KEY (up) REFERENCES tree (id) ON DELETE CASCADE ON UPDATE CASCADE)
       ENGINE=InnoDB""",
]
TABLES = ["acc", "kl", "my", "xat", "par", "chi", "gch", "tree"]
CASCADE_TABLES = {"par", "chi", "gch", "tree"}
FAULTS = ["kill_replica", "kill_target", "restart_mariadb", "kill_dump", "stop_start"]
KEYS = 120          # keys are drawn from a small range so that transactions collide
# XA transactions write a table of their own: a prepared transaction holds its row locks until
# XA COMMIT (across server restarts too), and after a restart the optimizer may scan a small
# table whole for an IN list, waiting on those locks for innodb_lock_wait_timeout
XA_KEYS = 0


@dataclass
class Result:
    iteration: int
    seed: int
    steps: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    divergent: list[str] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.divergent and self.error is None


class Workload:
    """Seeded random transactions on the source; every statement is one the source accepts."""

    def __init__(self, rng: random.Random, mariadb: MariaDBServer, db: str, cascades: bool,
                 ddl: int = 0) -> None:
        self.rng = rng
        self.mariadb = mariadb
        self.db = db
        self.cascades = cascades
        self.ddl = ddl  # 0 none, 1 the first set of DDL kinds, 2 more (a seed replays with its own level)
        # what the DDL steps added: columns (name -> type) and indexes per table, tables made
        self.cols: dict[str, dict[str, str]] = {"acc": {}, "kl": {}}
        self.idx: dict[str, dict[str, str]] = {"acc": {}, "kl": {}}  # index -> its one column
        self.new_tables: list[str] = []
        self.seq = 0
        self.kl_key: str | None = None  # an AUTO_INCREMENT primary key added to the keyless table
        self.conn = self._connect()
        self.xa_pending: list[str] = []
        self.xa_seq = 0
        self.xa_lost = 0      # prepared transactions the server did not keep across a restart
        self.tag = f"{db}"

    def _connect(self) -> pymysql.connections.Connection:
        return pymysql.connect(**self.mariadb.connect_args(self.db), autocommit=True)  # type: ignore[arg-type]

    def reconnect(self) -> None:
        try:
            self.conn.close()
        except Exception:  # noqa: BLE001 - the server may be gone already
            pass
        self.conn = self._connect()

    def _exec(self, conn: pymysql.connections.Connection, statements: list[str]) -> None:
        with conn.cursor() as cur:
            for st in statements:
                try:
                    cur.execute(st)
                except pymysql.err.OperationalError as exc:
                    exc.args = (*exc.args, f"in {st[:200]!r}")
                    raise

    def k(self) -> int:
        return self.rng.randint(1, KEYS)

    # -- statement makers ------------------------------------------------------------------
    def _dml(self) -> list[str]:
        r, k = self.rng, self.k
        choice = r.choice(["ins", "upd", "del", "move", "swap", "reinsert", "kl_ins", "kl_del", "kl_upd",
                           "my", "multi"] + (["cas"] * 3 if self.cascades else []))
        if choice == "ins":
            rows = ", ".join(f"({k()}, {r.randint(0, 9)}, 's{r.randint(0, 99)}')" for _ in range(r.randint(1, 5)))
            return [f"INSERT IGNORE INTO acc (id, v, s) VALUES {rows}"]
        if choice == "upd":
            return [f"UPDATE acc SET v = v + 1, s = 'u{r.randint(0, 99)}' WHERE id IN ({k()}, {k()}, {k()})"]
        if choice == "del":
            return [f"DELETE FROM acc WHERE id = {k()}"]
        if choice == "move":
            return [f"UPDATE IGNORE acc SET id = {k()} WHERE id = {k()}"]
        if choice == "swap":
            a, b = k(), k()
            return [f"UPDATE IGNORE acc SET id = -1 WHERE id = {a}", f"UPDATE IGNORE acc SET id = {a} WHERE id = {b}",
                    f"UPDATE IGNORE acc SET id = {b} WHERE id = -1", "DELETE FROM acc WHERE id = -1"]
        if choice == "reinsert":
            a = k()
            return [f"DELETE FROM acc WHERE id = {a}",
                    f"INSERT INTO acc (id, v, s) VALUES ({a}, {r.randint(0, 9)}, 'again')"]
        if choice == "kl_ins":
            v = r.randint(0, 5)
            return [f"INSERT INTO kl (a, b) VALUES ({v}, 'd{v}'), ({v}, 'd{v}')"]
        if choice == "kl_del":
            return [f"DELETE FROM kl WHERE a = {r.randint(0, 5)} LIMIT 1"]
        if choice == "kl_upd":
            return [f"UPDATE kl SET b = 'x{r.randint(0, 3)}' WHERE a = {r.randint(0, 5)} LIMIT 1"]
        if choice == "my":
            return [f"REPLACE INTO my VALUES ({k()}, {r.randint(0, 99)})"]
        if choice == "multi":
            return [f"INSERT IGNORE INTO acc (id, v, s) VALUES ({k()}, 0, 'm')",
                    f"INSERT INTO kl (a, b) VALUES ({r.randint(0, 5)}, 'm')",
                    f"UPDATE acc SET v = v - 1 WHERE id = {k()}"]
        return self._cascade()

    def _cascade(self) -> list[str]:
        r = self.rng
        p, c = r.randint(1, 30), r.randint(1, 60)
        return r.choice([
            [f"INSERT IGNORE INTO par VALUES ({p}, {r.randint(0, 9)})"],
            [f"INSERT IGNORE INTO chi SELECT {c}, id, 0 FROM par WHERE id = {p}"],
            [f"INSERT IGNORE INTO gch SELECT {r.randint(1, 90)}, c.id, c.pid FROM chi c WHERE c.id = {c}"],
            [f"DELETE FROM par WHERE id = {p}"],
            [f"UPDATE IGNORE par SET id = {r.randint(1, 30)} WHERE id = {p}"],
            [f"DELETE FROM chi WHERE id = {c}"],
            [f"UPDATE IGNORE chi SET id = {r.randint(1, 60)} WHERE id = {c}"],
            [f"DELETE FROM par WHERE id = {p}", f"INSERT IGNORE INTO par VALUES ({p}, 1)",
             f"INSERT IGNORE INTO chi VALUES ({c}, {p}, 1)"],
            ["SET foreign_key_checks = 0", f"DELETE FROM par WHERE id = {p}", "SET foreign_key_checks = 1"],
            [f"INSERT IGNORE INTO tree SELECT {r.randint(1, 40)}, id FROM tree WHERE id = {r.randint(1, 40)}"],
            [f"INSERT IGNORE INTO tree VALUES ({r.randint(1, 40)}, NULL)"],
            [f"DELETE FROM tree WHERE id = {r.randint(1, 40)}"],
            [f"UPDATE IGNORE tree SET id = {r.randint(41, 60)} WHERE id = {r.randint(1, 40)}"],
        ])

    def _name(self, prefix: str) -> str:
        self.seq += 1
        return f"{prefix}{self.seq}"

    def _ddl(self) -> list[str]:
        """One DDL statement (or a table's first rows), always one the source accepts."""
        r = self.rng
        t = r.choice(["acc", "kl"])
        cols, idx = self.cols[t], self.idx[t]
        where = r.choice(["", " FIRST", " AFTER v" if t == "acc" else " AFTER a"])
        kinds = ["add_int", "add_int", "add_str", "add_ts", "add_idx", "rebuild", "create"]
        if cols:
            kinds += ["drop", "rename", "modify", "modify", "fill", "fill", "fill"]
        if self.ddl >= 2:
            kinds += ["add_two", "charset"] + (["change", "set_default"] if cols else [])
            kinds += ["key"] if t == "kl" else []
        if idx:
            kinds.append("drop_idx")
        if self.new_tables:
            kinds += ["new_dml", "new_dml", "new_dml", "rename_table", "drop_table"]
        kind = r.choice(kinds)
        if kind == "add_int":
            c = self._name("c")
            cols[c] = "int"
            return [f"ALTER TABLE {t} ADD COLUMN {c} int NOT NULL DEFAULT {r.randint(-5, 5)}{where}"]
        if kind == "add_str":
            c = self._name("c")
            cols[c] = "varchar(10)"
            default = r.choice(["NULL", "'d'", "''"])
            return [f"ALTER TABLE {t} ADD COLUMN {c} varchar(10) DEFAULT {default}{where}"]
        if kind == "add_ts":  # the source's clock fills the rows: the replica re-copies the table
            c = self._name("c")
            cols[c] = "datetime(6)"
            return [f"ALTER TABLE {t} ADD COLUMN {c} datetime(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6){where}"]
        if kind == "add_two":
            a, b = self._name("c"), self._name("c")
            cols[a], cols[b] = "int", "varchar(10)"
            return [f"ALTER TABLE {t} ADD COLUMN ({a} int DEFAULT 3, {b} varchar(10) NOT NULL DEFAULT 'two')"]
        if kind == "charset":  # re-copied (a conversion to a charset that is not UTF-8), then back
            cs = r.choice(["latin1", "utf8mb4"])
            return [f"ALTER TABLE {t} CONVERT TO CHARACTER SET {cs}"]
        if kind == "key":  # the keyless table gets a generated key (re-copied: InnoDB's numbering), or loses it
            if self.kl_key is None:
                self.kl_key = self._name("k")
                return [f"ALTER TABLE kl ADD COLUMN {self.kl_key} int AUTO_INCREMENT PRIMARY KEY{where}"]
            key, self.kl_key = self.kl_key, None
            return [f"ALTER TABLE kl DROP PRIMARY KEY, DROP COLUMN {key}"]
        if kind == "change":
            c = r.choice(sorted(cols))
            n = self._name("c")
            new_type = {"int": "bigint", "bigint": "int", "varchar(10)": "varchar(30)", "varchar(30)": "varchar(10)",
                        "datetime(6)": "datetime(6)"}[cols.pop(c)]
            cols[n] = new_type
            for name, col in list(idx.items()):
                if col == c:
                    idx[name] = n
            return [f"ALTER TABLE {t} CHANGE COLUMN {c} {n} {new_type}"]
        if kind == "set_default":
            c = r.choice(sorted(cols))
            value = {"int": "7", "bigint": "8", "varchar(10)": "'dd'", "varchar(30)": "'ddd'",
                     "datetime(6)": "'2020-02-02 02:02:02.5'"}[cols[c]]
            return [f"ALTER TABLE {t} ALTER COLUMN {c} SET DEFAULT {value}"]
        if kind == "drop":
            c = r.choice(sorted(cols))
            del cols[c]
            for name in [i for i, col in idx.items() if col == c]:
                del idx[name]  # MariaDB drops an index whose only column goes
            return [f"ALTER TABLE {t} DROP COLUMN {c}"]
        if kind == "rename":
            c = r.choice(sorted(cols))
            n = self._name("c")
            cols[n] = cols.pop(c)
            for name, col in list(idx.items()):
                if col == c:
                    idx[name] = n  # the index keeps its name and follows the column
            return [f"ALTER TABLE {t} RENAME COLUMN {c} TO {n}"]
        if kind == "modify":
            c = r.choice(sorted(cols))
            wider = {"int": "bigint NOT NULL DEFAULT 0", "bigint": "int NOT NULL DEFAULT 1",
                     "varchar(10)": "varchar(30) DEFAULT 'w'", "varchar(30)": "varchar(10) DEFAULT NULL",
                     "datetime(6)": "datetime(6) NULL"}
            if self.ddl >= 2:  # columns may hold NULLs here (CHANGE, two columns at once): keep them nullable
                wider.update({"int": "bigint DEFAULT 0", "bigint": "int DEFAULT 1"})
            new_type = wider[cols[c]]
            cols[c] = new_type.split()[0]
            return [f"ALTER TABLE {t} MODIFY COLUMN {c} {new_type}"]
        if kind == "fill":
            c = r.choice(sorted(cols))
            value = {"int": str(r.randint(-100, 100)), "bigint": str(r.randint(-10**12, 10**12)),
                     "varchar(10)": f"'f{r.randint(0, 999)}'", "varchar(30)": "''",
                     "datetime(6)": f"'2024-0{r.randint(1, 9)}-1{r.randint(0, 9)} 03:04:05.{r.randint(0, 999999):06d}'"}
            v = value[cols[c]]
            # a later MODIFY back to the narrower type must still fit: small values in the wide types
            v = {"bigint": str(r.randint(-10**6, 10**6)), "varchar(30)": f"'g{r.randint(0, 999)}'"}.get(cols[c], v)
            key = f"id = {self.k()}" if t == "acc" else f"a = {r.randint(0, 5)} LIMIT 2"
            return [f"UPDATE {t} SET {c} = {v} WHERE {key}"]
        if kind == "add_idx":
            c = r.choice(sorted(cols) or (["v"] if t == "acc" else ["a"]))
            name = self._name("ix")
            idx[name] = c
            return [f"ALTER TABLE {t} ADD INDEX {name} ({c})"]
        if kind == "drop_idx":
            name = r.choice(sorted(idx))
            del idx[name]
            return [f"ALTER TABLE {t} DROP INDEX {name}"]
        if kind == "rebuild":
            return [f"ALTER TABLE {t} FORCE"]
        if kind == "create":
            n = self._name("n")
            self.new_tables.append(n)
            rows = ", ".join(f"({i}, 'n{i}')" for i in range(1, r.randint(2, 12)))
            return [f"CREATE TABLE {n} (id int PRIMARY KEY, v varchar(10))", f"INSERT INTO {n} VALUES {rows}"]
        n = r.choice(self.new_tables)
        if kind == "rename_table":
            m = self._name("n")
            self.new_tables[self.new_tables.index(n)] = m
            return [f"RENAME TABLE {n} TO {m}"]
        if kind == "drop_table":
            self.new_tables.remove(n)
            return [f"DROP TABLE {n}"]
        return [r.choice([f"INSERT IGNORE INTO {n} (id, v) VALUES ({r.randint(1, 30)}, 'i')",
                          f"UPDATE {n} SET v = 'u{r.randint(0, 9)}' WHERE id = {r.randint(1, 30)}",
                          f"DELETE FROM {n} WHERE id = {r.randint(1, 30)}"])]

    # -- transactions -----------------------------------------------------------------------
    def step(self) -> str:
        r = self.rng
        if self.ddl and r.random() < 0.12:
            self._exec(self.conn, self._ddl())  # DDL commits implicitly: outside any transaction
            return "ddl"
        shape = r.choices(
            ["single", "txn", "savepoint", "rollback", "xa", "xa_end", "big", "rotate", "idle"],
            weights=[20, 30, 12, 6, 5, 5, 3, 2, 2])[0]
        if shape == "xa_end" and not self.xa_pending:
            shape = "txn"
        if shape == "xa" and len(self.xa_pending) >= 3:
            shape = "xa_end"
        c = self.conn
        if shape == "single":
            self._exec(c, self._dml()[:1])
        elif shape == "txn":
            self._exec(c, ["BEGIN"] + [s for _ in range(r.randint(2, 6)) for s in self._dml()] + ["COMMIT"])
        elif shape == "savepoint":
            body = ["BEGIN", *self._dml(), "SAVEPOINT sp1", *self._dml(), *self._dml()]
            if r.random() < 0.5:
                body += ["SAVEPOINT sp2", *self._dml(), "ROLLBACK TO SAVEPOINT sp2"]
            body += ["ROLLBACK TO SAVEPOINT sp1", *self._dml(), "COMMIT"]
            self._exec(c, body)
        elif shape == "rollback":
            self._exec(c, ["BEGIN", *self._dml(), *self._dml(), "ROLLBACK"])
        elif shape == "xa":
            self.xa_seq += 1
            xid = f"{self.tag}_x{self.xa_seq}"     # XIDs are server-wide
            base = XA_KEYS + self.xa_seq * 10
            xc = self._connect()
            try:
                self._exec(xc, [f"XA START '{xid}'",
                                f"INSERT INTO xat VALUES ({base}, 1, 'xa'), ({base + 1}, 2, 'xa')",
                                f"UPDATE xat SET v = 5 WHERE id = {base}"])
                if r.random() < 0.25:
                    self._exec(xc, [f"XA END '{xid}'", f"XA COMMIT '{xid}' ONE PHASE"])
                else:
                    self._exec(xc, [f"XA END '{xid}'", f"XA PREPARE '{xid}'"])
                    self.xa_pending.append(xid)
            finally:
                xc.close()    # a prepared XA transaction outlives its session (MariaDB 10.5+)
        elif shape == "xa_end":
            xid = self.xa_pending.pop(r.randrange(len(self.xa_pending)))
            verb = "COMMIT" if r.random() < 0.7 else "ROLLBACK"
            self._xa_end(verb, xid)
        elif shape == "big":
            n = r.randint(250, 700)
            rows = ", ".join(f"({r.randint(0, 5)}, 'big')" for _ in range(n))
            body = ["BEGIN", f"INSERT INTO kl (a, b) VALUES {rows}", *self._dml()]
            if r.random() < 0.5:
                body += ["SAVEPOINT b", f"INSERT INTO kl (a, b) VALUES {rows}", "ROLLBACK TO b"]
            body += ["UPDATE kl SET b = 'big2' WHERE b = 'big' LIMIT 100", "COMMIT"]
            self._exec(c, body)
        elif shape == "rotate":
            self._exec(c, ["FLUSH BINARY LOGS"])
        else:
            time.sleep(r.uniform(0.05, 0.4))
        return shape

    def _xa_end(self, verb: str, xid: str) -> None:
        try:
            self._exec(self.conn, [f"XA {verb} '{xid}'"])
        except pymysql.err.OperationalError as exc:
            if exc.args[0] != 1397:      # XAER_NOTA: gone with a server restart
                raise
            self.xa_lost += 1

    def finish(self) -> None:
        for xid in self.xa_pending:
            self._xa_end("COMMIT", xid)
        self.xa_pending = []

    def seed_rows(self) -> None:
        self._exec(self.conn, ["INSERT INTO acc VALUES " + ", ".join(f"({i}, {i % 7}, 's')" for i in range(1, 60)),
                               "INSERT INTO kl VALUES (1, 'a'), (1, 'a'), (2, 'b')"])
        if self.cascades:
            par = ", ".join(f"({i}, 0)" for i in range(1, 21))
            chi = ", ".join(f"({i}, {1 + i % 20}, 0)" for i in range(1, 41))
            self._exec(self.conn, ["INSERT INTO par VALUES " + par,
                                   "INSERT INTO chi VALUES " + chi,
                                   "INSERT INTO gch VALUES " + ", ".join(f"({i}, {1 + i % 40}, {1 + (1 + i % 40) % 20})"
                                                                          for i in range(1, 31)),
                                   "INSERT INTO tree VALUES (1, NULL), (2, 1), (3, 2), (4, 2), (5, 4), (6, NULL)"])


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out.append(int(entry.name))
    return out


def kill_tree(pid: int) -> None:
    """kill -9 of a postmaster and its backends at once (a crash), then wait until all are gone."""
    pids = [pid, *_children(pid)]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_pid_alive(p) for p in pids):
        time.sleep(0.05)


class Harness:
    def __init__(self, root: Path, use_gtid: bool, cascades: bool, verbose: bool, ddl: int = 0) -> None:
        self.root = root
        self.ddl = ddl
        self.use_gtid = use_gtid
        self.cascades = cascades
        self.verbose = verbose
        self.mariadb = MariaDBServer(root / "mariadb")
        # commits acknowledged by the target must survive its kill -9, as on a real server
        self.pg = PostgresServer(root / "pg", settings={"synchronous_commit": "on"})
        self.proc: subprocess.Popen[bytes] | None = None
        self.server_id = 7000

    def __enter__(self) -> Harness:
        self.mariadb.start()
        self.pg.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_replica()
        self.mariadb.stop()
        self.pg.stop()

    # -- the replica process ---------------------------------------------------------------
    def start_replica(self, cfg_path: Path, log_path: Path) -> None:
        logf = open(log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pgbaton", "-c", str(cfg_path), "replica", "start", "-s", "src"],
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()

    def stop_replica(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None

    # -- faults -----------------------------------------------------------------------------
    def fault(self, kind: str, workload: Workload, cfg_path: Path, log_path: Path) -> None:
        if kind == "kill_replica":
            self.stop_replica(signal.SIGKILL)
            self.start_replica(cfg_path, log_path)
        elif kind == "stop_start":
            self.stop_replica(signal.SIGTERM)
            self.start_replica(cfg_path, log_path)
        elif kind == "kill_target":
            assert self.pg.pid is not None
            kill_tree(self.pg.pid)
            self.pg.pid = None
            # the killed postmaster may stay a zombie (nobody reaps it here), which the new
            # one would take for a live server: its pid file is stale, we know it is dead
            (self.pg.datadir / "postmaster.pid").unlink(missing_ok=True)
            (self.pg.socket_dir / f".s.PGSQL.{self.pg.port}.lock").unlink(missing_ok=True)
            self.pg.start()
        elif kind == "restart_mariadb":
            self.mariadb.stop()
            self.mariadb.start()
            workload.reconnect()
        elif kind == "kill_dump":
            with workload.conn.cursor() as cur:
                cur.execute("SELECT id FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'")
                for (tid,) in cur.fetchall():
                    try:
                        cur.execute(f"KILL {int(tid)}")
                    except pymysql.err.OperationalError:
                        pass

    # -- one iteration ----------------------------------------------------------------------
    def iteration(self, it: int, seed: int, steps: int, fault_rate: float) -> Result:
        rng = random.Random(seed)
        res = Result(it, seed)
        started = time.monotonic()
        my_db, pg_db = f"t{it}_{seed}", f"t{it}_{seed}"
        with self.mariadb.connect() as c, c.cursor() as cur:
            cur.execute(f"CREATE DATABASE {my_db}")
        with psycopg.connect(self.pg.dsn(), autocommit=True) as c:
            c.execute(f"CREATE DATABASE {pg_db}")
        workload = Workload(rng, self.mariadb, my_db, self.cascades, ddl=self.ddl)
        workload._exec(workload.conn, SCHEMA if self.cascades else [s for s in SCHEMA if "REFERENCES" not in s
                                                                    and "par" not in s])
        workload.seed_rows()
        self.server_id += 1
        raw = {
            "target": {"host": "127.0.0.1", "port": self.pg.port, "dbname": pg_db, "user": "postgres"},
            "sources": {"src": {"type": "mariadb", "host": "127.0.0.1", "port": self.mariadb.port, "user": "root",
                                "databases": {my_db: "app"}, "server_id": self.server_id,
                                "batch_max_rows": 200, "use_gtid": self.use_gtid, "heartbeat_seconds": 0.5}},
        }
        cfg_path = self.root / f"it{it}.json"
        cfg_path.write_text(json.dumps(raw))
        log_path = self.root / f"it{it}.log"
        cfg = parse_config(raw)
        add_source(cfg, "src")
        init_replica(cfg, "src", show_progress=False)
        self.start_replica(cfg_path, log_path)
        try:
            for _ in range(steps):
                workload.step()
                res.steps += 1
                if rng.random() < fault_rate:
                    kind = rng.choice(FAULTS)
                    res.faults[kind] += 1
                    self.fault(kind, workload, cfg_path, log_path)
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"the replica process exited by itself ({self.proc.returncode}); "
                                       f"see {log_path}")
            workload.finish()
            if workload.xa_lost:
                res.faults["xa_lost_by_server"] += workload.xa_lost
            self._wait_caught_up(cfg, log_path)
            res.divergent = self._compare(my_db, pg_db)
            # a table re-copied by design (a DDL whose effect on the rows no replay can reproduce)
            # is fine; anything else recorded is a failure to look at
            errs = [e for e in errors(cfg, "src") if not e["message"].startswith("re-copied from a fresh snapshot")]
            if errs:
                res.error = f"{len(errs)} replay error(s): {errs[0]['message']}"
        except Exception as exc:  # noqa: BLE001 - reported in the table
            res.error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, pymysql.err.OperationalError) and exc.args[0] == 1205:
                res.error += " " + self._lock_report()
        finally:
            self.stop_replica()
            workload.conn.close()
        res.seconds = time.monotonic() - started
        return res

    def _lock_report(self) -> str:
        try:
            with self.mariadb.connect() as c, c.cursor() as cur:
                cur.execute("SELECT trx_id, trx_state, trx_mysql_thread_id, trx_query, trx_rows_locked "
                            "FROM information_schema.INNODB_TRX")
                trx = cur.fetchall()
                cur.execute("XA RECOVER")
                xa = cur.fetchall()
                cur.execute("SELECT lock_trx_id, lock_mode, lock_type, lock_table, lock_data "
                            "FROM information_schema.INNODB_LOCKS")
                locks = cur.fetchall()
            return f"[trx {trx}] [xa {xa}] [locks {locks}]"
        except Exception as exc:  # noqa: BLE001 - a diagnosis only
            return f"(no lock report: {exc})"

    def _wait_caught_up(self, cfg: Any, log_path: Path, timeout: float = 180) -> None:
        # a marker transaction: caught up once it has arrived and nothing is pending
        deadline = time.monotonic() + timeout
        st: dict[str, Any] = {}
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the replica process is not running; see {log_path}")
            try:
                st = status(cfg, "src")[0]
            except Exception:  # noqa: BLE001 - the target may still be starting
                time.sleep(0.5)
                continue
            if st["read_lag_bytes"] == 0 and st["pending_events"] == 0 and st["pending_batches"] == 0 \
                    and all(t["state"] == "replicating" for t in table_status(cfg, "src")):
                return
            time.sleep(0.3)
        raise RuntimeError(f"the replica did not catch up within {timeout:.0f} s ({st}); see {log_path}")

    def _compare(self, my_db: str, pg_db: str) -> list[str]:
        """Every table of the source database against the target schema: the same tables, the
        same columns, the same rows (as multisets)."""
        bad = []
        with self.mariadb.connect(my_db) as mc, psycopg.connect(self.pg.dsn(pg_db)) as pc:
            with mc.cursor() as cur:
                cur.execute("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = %s ORDER BY table_name, ordinal_position", (my_db,))
                src_cols: dict[str, list[str]] = {}
                for t, c in cur.fetchall():
                    src_cols.setdefault(t, []).append(c)
            dst_cols: dict[str, list[str]] = {}
            for t, c in pc.execute("SELECT table_name, column_name FROM information_schema.columns "
                                   "WHERE table_schema = 'app' ORDER BY table_name, ordinal_position").fetchall():
                dst_cols.setdefault(t, []).append(c)
            if set(src_cols) != set(dst_cols):
                bad.append(f"tables: only on the source {sorted(set(src_cols) - set(dst_cols))}, "
                           f"only on the target {sorted(set(dst_cols) - set(src_cols))}")
            for t in sorted(set(src_cols) & set(dst_cols)):
                cols = src_cols[t]
                if sorted(cols) != sorted(dst_cols[t]):
                    bad.append(f"{t} columns: source {cols}, target {dst_cols[t]}")
                    continue
                with mc.cursor() as cur:
                    cur.execute("SELECT " + ", ".join(f"`{c}`" for c in cols) + f" FROM `{t}`")
                    src = Counter(tuple(r) for r in cur.fetchall())
                dst = Counter(tuple(r) for r in pc.execute(
                    "SELECT " + ", ".join(f'"{c}"' for c in cols) + f' FROM app."{t}"').fetchall())
                if src != dst:
                    missing, extra = src - dst, dst - src
                    bad.append(f"{t} (missing {sum(missing.values())}, extra {sum(extra.values())}: "
                               f"{list(missing)[:3]} / {list(extra)[:3]})")
        return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--steps", type=int, default=120, help="workload steps per iteration")
    ap.add_argument("--fault-rate", type=float, default=0.06, help="chance of a fault after each step")
    ap.add_argument("--gtid", action="store_true", help="follow by GTID instead of file/position")
    ap.add_argument("--no-cascades", action="store_true", help="leave the foreign key tables out")
    ap.add_argument("--dir", type=Path, help="keep servers and logs here (default: a temp folder, removed)")
    ap.add_argument("--only", type=int, help="run just the iteration with this seed (as printed)")
    ap.add_argument("--ddl", type=int, nargs="?", const=2, default=0, metavar="LEVEL",
                    help="DDL statements in the workload too (columns added, dropped, renamed, retyped; "
                         "indexes; tables made, renamed, dropped); level 1: the first set of kinds, "
                         "2 (default): more (CHANGE, SET DEFAULT, two columns at once, charsets, a key added "
                         "to the keyless table and dropped)")
    args = ap.parse_args(argv)
    root = args.dir or Path(tempfile.mkdtemp(prefix="pgbaton-torture-"))
    root.mkdir(parents=True, exist_ok=True)
    for old in ("mariadb", "pg"):
        shutil.rmtree(root / old, ignore_errors=True)
    root.chmod(0o1777)
    results = run(root, args.seed, args.iterations, args.steps, args.fault_rate, args.gtid, not args.no_cascades,
                  args.only, ddl=args.ddl)
    print_table(results, args.gtid)
    if args.dir is None and all(r.ok for r in results):
        shutil.rmtree(root, ignore_errors=True)
    return 0 if all(r.ok for r in results) else 1


def run(root: Path, seed: int, iterations: int, steps: int, fault_rate: float, use_gtid: bool,
        cascades: bool, only: int | None = None, ddl: int = 0) -> list[Result]:
    results = []
    seeds = [only] if only is not None else [seed * 1000 + it for it in range(iterations)]
    with Harness(root, use_gtid, cascades, verbose=False, ddl=ddl) as h:
        for it, iseed in enumerate(seeds):
            r = h.iteration(it, iseed, steps, fault_rate)
            results.append(r)
            mark = "ok" if r.ok else "DIVERGED"
            print(f"iteration {it} seed {r.seed}: {mark} ({r.steps} steps, faults {dict(r.faults)}, "
                  f"{r.seconds:.1f} s){'' if r.ok else ' ' + '; '.join(r.divergent) + ' ' + (r.error or '')}",
                  flush=True)
    return results


def print_table(results: list[Result], use_gtid: bool) -> None:
    faults: Counter[str] = Counter()
    for r in results:
        faults.update(r.faults)
    bad = [r for r in results if not r.ok]
    print()
    print("| mode | iterations | steps | faults | divergent | errors |")
    print("|---|---|---|---|---|---|")
    print(f"| {'gtid' if use_gtid else 'file/pos'} | {len(results)} | {sum(r.steps for r in results)} | "
          f"{', '.join(f'{k} {v}' for k, v in sorted(faults.items()))} | "
          f"{sum(1 for r in bad if r.divergent)} | {sum(1 for r in bad if r.error)} |")
    for r in bad:
        print(f"  seed {r.seed}: {'; '.join(r.divergent)} {r.error or ''}")


if __name__ == "__main__":
    sys.exit(main())
