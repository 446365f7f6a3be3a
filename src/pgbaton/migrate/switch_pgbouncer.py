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


class _Cutoff:
    """Ends a blocking admin command after ``timeout`` seconds by shutting the socket down under it
    (PgBouncer's PAUSE waits for transactions in flight without a bound of its own).  The pause
    it leaves pending is lifted by the RESUME of the rollback."""

    def __init__(self, conn: psycopg.Connection, timeout: float) -> None:
        self.fired = False
        self._fd = conn.pgconn.socket
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            sock = socket.socket(fileno=os.dup(self._fd))
            sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


# -- the switcher ---------------------------------------------------------------------------------
class PgBouncerSwitcher:
    def __init__(self, cfg: SwitchConfig) -> None:
        if cfg.ini_file is None:
            raise PgbatonError("switch.ini_file is required with method pgbouncer")
        self.cfg, self.ini = cfg, cfg.ini_file.expanduser()

    def _admin(self, *commands: str, tolerate: tuple[str, ...] = (), timeout: float | None = None) -> None:
        params: dict[str, object] = {"host": self.cfg.host, "port": self.cfg.port, "dbname": "pgbouncer",
                                     "user": self.cfg.user, "connect_timeout": 10}
        pw = self.cfg.resolve_password("switch")
        if pw is not None:
            params["password"] = pw
        try:
            conn = psycopg.connect(make_conninfo(**params), autocommit=True)  # type: ignore[arg-type]
        except psycopg.OperationalError as exc:
            detail = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
            raise PgbatonError(f"cannot reach the PgBouncer admin console at {self.cfg.host}:{self.cfg.port} "
                               f"as {self.cfg.user}: {detail}") from None
        timer = _Cutoff(conn, timeout) if timeout is not None else None
        with conn:
            for cmd in commands:
                try:
                    conn.execute(cmd)  # no parameters: sent as a simple query
                except psycopg.Error as exc:
                    if timer is not None and timer.fired:
                        raise PgbatonError(f"PgBouncer: {cmd} did not complete within {timeout:.0f} s "
                                           "(switch.pause_timeout_seconds): a transaction in flight did not "
                                           "end") from None
                    msg = str(exc).strip()
                    if any(t in msg for t in tolerate):
                        log.debug("pgbouncer: %s: %s (fine)", cmd, msg)
                        continue
                    raise PgbatonError(f"PgBouncer refused {cmd}: {msg}") from None
                log.info("pgbouncer: %s", cmd)
            if timer is not None:
                timer.cancel()

    def pause(self, dbs: list[str]) -> None:
        self._admin(*(f"PAUSE {_admin_name(db)}" for db in dbs), tolerate=("already",),
                    timeout=self.cfg.pause_timeout_seconds)

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
