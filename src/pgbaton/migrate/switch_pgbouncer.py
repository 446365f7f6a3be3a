"""PgBouncer as the traffic switcher: PAUSE, rewrite the ``[databases]`` entries, RELOAD, RESUME.

The admin console speaks only the simple query protocol: statements without parameters,
which psycopg sends as simple queries.  Database names are validated, not interpolated
blindly.  Passwords in the ini file are kept as they are and never logged.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from pgbaton.config import ClusterConfig, SwitchConfig
from pgbaton.errors import PgbatonError

log = logging.getLogger(__name__)

_SIMPLE = re.compile(r"^[A-Za-z0-9_]+$")
_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")


def _admin_name(db: str) -> str:
    if _SIMPLE.match(db):
        return db
    if '"' in db or "\n" in db:
        raise PgbatonError(f"database name {db!r} cannot be named on the PgBouncer admin console")
    return f'"{db}"'


# -- [databases] entries ----------------------------------------------------------------------
def parse_connstr(value: str) -> list[tuple[str, str]]:
    """``key=value key2='quoted value'`` as PgBouncer reads a [databases] entry, order kept."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(value)
    while i < n:
        while i < n and value[i].isspace():
            i += 1
        if i >= n:
            break
        eq = value.find("=", i)
        if eq < 0:
            raise PgbatonError("a [databases] entry of the PgBouncer ini file is not key=value")
        key = value[i:eq].strip()
        i = eq + 1
        while i < n and value[i] == " ":
            i += 1
        if i < n and value[i] == "'":
            i += 1
            buf: list[str] = []
            while i < n:
                if value[i] == "'" and i + 1 < n and value[i + 1] == "'":
                    buf.append("'")
                    i += 2
                elif value[i] == "'":
                    i += 1
                    break
                else:
                    buf.append(value[i])
                    i += 1
            pairs.append((key, "".join(buf)))
        else:
            j = i
            while j < n and not value[j].isspace():
                j += 1
            pairs.append((key, value[i:j]))
            i = j
    return pairs


def format_connstr(pairs: list[tuple[str, str]]) -> str:
    def q(v: str) -> str:
        return v if v and not any(c.isspace() or c == "'" for c in v) else "'" + v.replace("'", "''") + "'"
    return " ".join(f"{k}={q(v)}" for k, v in pairs)


def rewrite_databases(text: str, dbs: list[str], host: str, port: int) -> str:
    """The ini text with the [databases] entries of ``dbs`` pointing at host:port.

    Other keys of an entry (dbname, user, password, pool_size ...) are kept; a database
    without an entry gets one; comments, other sections and other entries stay as they are.
    """
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    section: str | None = None
    seen: set[str] = set()
    db_end: int | None = None  # index in ``out`` after the last line of [databases]

    def new_entry(db: str) -> str:
        return f"{db} = {format_connstr([('host', host), ('port', str(port)), ('dbname', db)])}\n"

    for line in lines:
        m = _SECTION.match(line)
        if m:
            section = m.group(1).strip().lower()
            out.append(line)
            if section == "databases":
                db_end = len(out)
            continue
        if section == "databases":
            stripped = line.strip()
            if stripped and not stripped.startswith((";", "#")) and "=" in stripped:
                key, _, value = stripped.partition("=")
                name = key.strip().strip('"')
                if name in dbs and name not in seen:
                    seen.add(name)
                    pairs = dict(parse_connstr(value))
                    pairs["host"], pairs["port"] = host, str(port)
                    pairs.setdefault("dbname", name)
                    line = f"{key.strip()} = {format_connstr(list(pairs.items()))}\n"
            out.append(line)
            if stripped:
                db_end = len(out)
            continue
        out.append(line)
    missing = [new_entry(db) for db in dbs if db not in seen]
    if missing:
        if db_end is None:
            if out and not out[-1].endswith("\n"):
                out[-1] += "\n"
            out += ["[databases]\n", *missing]
        else:
            if not out[db_end - 1].endswith("\n"):
                out[db_end - 1] += "\n"
            out[db_end:db_end] = missing
    return "".join(out)


def write_atomically(path: Path, text: str) -> None:
    """Write a temp file next to ``path`` (same owner and mode), fsync it, rename it over."""
    st = path.stat()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(tmp, st.st_uid, st.st_gid)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


_CANCEL_GRACE = 0.4  # seconds PAUSE gets after the transactions holding it were ended


def _join(threads: Iterable[threading.Thread], deadline: float) -> None:
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))


def _cut(conn: psycopg.Connection) -> None:
    """End a blocking admin command by shutting the socket down under it (PgBouncer's PAUSE waits
    for the transactions in flight without a bound of its own).  The pause it leaves pending is
    lifted by the RESUME of the rollback."""
    try:
        sock = socket.socket(fileno=os.dup(conn.pgconn.socket))
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    except (OSError, psycopg.Error):
        pass


# -- the switcher ---------------------------------------------------------------------------------
class PgBouncerSwitcher:
    def __init__(self, cfg: SwitchConfig) -> None:
        if cfg.ini_file is None:
            raise PgbatonError("switch.ini_file is required with method pgbouncer")
        self.cfg, self.ini = cfg, cfg.ini_file.expanduser()

    def _connect(self) -> psycopg.Connection:
        params: dict[str, object] = {"host": self.cfg.host, "port": self.cfg.port, "dbname": "pgbouncer",
                                     "user": self.cfg.user, "connect_timeout": 10}
        pw = self.cfg.resolve_password("switch")
        if pw is not None:
            params["password"] = pw
        try:
            return psycopg.connect(make_conninfo(**params), autocommit=True)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            detail = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise PgbatonError(f"cannot reach the PgBouncer admin console at {self.cfg.host}:{self.cfg.port} "
                               f"as {self.cfg.user}: {detail}") from None

    def _admin(self, *commands: str, tolerate: tuple[str, ...] = ()) -> None:
        with self._connect() as conn:
            for cmd in commands:
                try:
                    conn.execute(cmd)  # no parameters: sent as a simple query
                except psycopg.Error as exc:
                    msg = str(exc).strip()
                    if any(t in msg for t in tolerate):
                        log.debug("pgbouncer: %s: %s (fine)", cmd, msg)
                        continue
                    raise PgbatonError(f"PgBouncer refused {cmd}: {msg}") from None
                log.info("pgbouncer: %s", cmd)

    def pause(self, dbs: list[str], on_deadline: Callable[[list[str]], None] | None = None) -> None:
        """``PAUSE`` every database at once (one admin connection each) under one deadline,
        switch.pause_timeout_seconds from now.  A database whose PAUSE is still waiting for a
        transaction then: ``on_deadline(those databases)`` is called if given (it may end the
        transactions; PAUSE gets a short moment more), else, or if that did not help, the
        pending commands are cut off and the step fails (the rollback RESUMEs everything)."""
        timeout = self.cfg.pause_timeout_seconds
        deadline = time.monotonic() + timeout
        conns: dict[str, psycopg.Connection] = {}
        outcome: dict[str, str | None] = {}

        def run(db: str) -> None:
            cmd = f"PAUSE {_admin_name(db)}"
            try:
                conns[db].execute(cmd)
                outcome[db] = None
                log.info("pgbouncer: %s", cmd)
            except psycopg.Error as exc:
                msg = str(exc).strip()
                outcome[db] = None if "already" in msg else msg

        threads = {db: threading.Thread(target=run, args=(db,), daemon=True, name=f"pgbaton-pause-{db}")
                   for db in dbs}
        try:
            if len(dbs) > 1:  # the admin connections side by side: the clients run meanwhile
                with ThreadPoolExecutor(max_workers=min(len(dbs), 16)) as pool:
                    opened = {db: pool.submit(self._connect) for db in dbs}
                try:
                    for db, f in opened.items():
                        conns[db] = f.result()
                finally:  # one that failed: the others opened are closed below
                    for db, f in opened.items():
                        if db not in conns and f.exception() is None:
                            f.result().close()
            else:
                conns.update({db: self._connect() for db in dbs})
            for t in threads.values():
                t.start()
            _join(threads.values(), deadline)
            pending = [db for db, t in threads.items() if t.is_alive()]
            # PgBouncer completes the PAUSE commands of several databases together, once all are idle
            holding = self._busy(pending) if pending else []
            if pending and on_deadline is not None:
                log.warning("pgbouncer: PAUSE still waiting after %.1f s for %s: ending their transactions",
                            timeout, ", ".join(pending))
                on_deadline(pending)
                _join((threads[db] for db in pending), time.monotonic() + _CANCEL_GRACE)
                pending = [db for db in pending if threads[db].is_alive()]
            for db in pending:
                _cut(conns[db])  # the pause it leaves pending is lifted by the rollback's RESUME
            _join(threads.values(), time.monotonic() + 5)
        finally:
            for c in conns.values():
                c.close()
        if pending:
            raise PgbatonError(f"PgBouncer: PAUSE did not complete within {timeout:.0f} s "
                               "(switch.pause_timeout_seconds): a transaction in flight did not end, in "
                               + ", ".join(holding or pending))
        failed = {db: msg for db, msg in outcome.items() if msg}
        if failed:
            raise PgbatonError("PgBouncer refused PAUSE: " + "; ".join(f"{db}: {m}" for db, m in failed.items()))

    def _busy(self, dbs: list[str]) -> list[str]:
        """Those of ``dbs`` with a server connection still in use (a transaction in flight)."""
        try:
            with self._connect() as conn:
                cur = conn.execute("SHOW POOLS")
                cols = [d.name for d in cur.description or []]
                rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        except (PgbatonError, psycopg.Error):
            return []
        return sorted({str(r["database"]) for r in rows if r.get("database") in dbs and int(r.get("sv_active") or 0)})

    def point_to(self, cluster: ClusterConfig, dbs: list[str]) -> None:
        try:
            text = self.ini.read_text(encoding="utf-8")
        except OSError as exc:
            raise PgbatonError(f"cannot read the PgBouncer ini file {self.ini}: {exc.strerror}") from None
        new = rewrite_databases(text, dbs, cluster.host, cluster.port)
        if new != text:
            write_atomically(self.ini, new)
            log.info("pgbouncer: %s now points %s at %s:%s", self.ini, ", ".join(dbs), cluster.host, cluster.port)
        self._admin("RELOAD")

    def resume(self, dbs: list[str]) -> None:
        self._admin(*(f"RESUME {_admin_name(db)}" for db in dbs), tolerate=("not paused",))
