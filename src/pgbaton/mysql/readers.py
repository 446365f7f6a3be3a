"""Ways to stream a snapshot SELECT from the source as COPY text.

Both readers hold one transaction opened WITH CONSISTENT SNAPSHOT and stream the
result of ``SELECT CONCAT_WS(...)`` (one COPY line per row) to a sink:

- ``ClientReader`` drives the server's own command-line client (`mariadb` or
  `mysql`) over pipes.  Its C code receives and prints the rows; Python only
  moves large byte blocks to COPY.  This is the fast path.
- ``PyMySQLReader`` uses a PyMySQL connection with an unbuffered cursor, for
  machines without the client program.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from collections.abc import Callable
from typing import Protocol

import pymysql

from pgbaton.config import MySQLSourceConfig
from pgbaton.errors import SourceError

log = logging.getLogger(__name__)

Sink = Callable[[bytes], None]
Progress = Callable[[int, int], None]

# A line no COPY data line can be: data escapes every backslash it contains.
_END = b"\\.pgbaton-end"
_END_SQL = "SELECT '\\\\.pgbaton-end';"
_READY = b"\\.pgbaton-ready"
_READY_SQL = "SELECT '\\\\.pgbaton-ready';"


class SnapshotReader(Protocol):
    def begin(self, session_sql: list[str]) -> None: ...

    def stream(self, query: str, sink: Sink, progress: Progress) -> tuple[int, int]: ...

    def close(self) -> None: ...


class PyMySQLReader:
    def __init__(self, conn: pymysql.connections.Connection, chunk_rows: int = 20000) -> None:
        self.conn = conn
        self.chunk_rows = chunk_rows

    def begin(self, session_sql: list[str]) -> None:
        with self.conn.cursor() as cur:
            for stmt in session_sql:
                cur.execute(stmt)
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")

    def stream(self, query: str, sink: Sink, progress: Progress) -> tuple[int, int]:
        rows = size = 0
        with self.conn.cursor(pymysql.cursors.SSCursor) as cur:
            cur.execute(query)
            while True:
                chunk = cur.fetchmany(self.chunk_rows)
                if not chunk:
                    break
                data = b"\n".join(r[0] if isinstance(r[0], bytes) else r[0].encode() for r in chunk) + b"\n"
                sink(data)
                rows += len(chunk)
                size += len(data)
                progress(len(chunk), len(data))
        return rows, size

    def close(self) -> None:
        self.conn.close()


def client_program() -> str | None:
    return shutil.which("mariadb") or shutil.which("mysql")


class ClientReader:
    """A `mariadb`/`mysql` client process in batch mode, fed statements one at a time."""

    def __init__(self, src: MySQLSourceConfig, program: str) -> None:
        args = [program]
        if src.my_cnf is not None:
            args.append(f"--defaults-file={src.my_cnf.expanduser()}")
        else:
            args.append("--no-defaults")
        args += ["-h", src.host, "-P", str(src.port), "-u", src.user, "--protocol=TCP",
                 "--default-character-set=utf8mb4", "--batch", "--raw", "--skip-column-names", "--quick",
                 "--unbuffered", "--connect-timeout=10"]
        env = dict(os.environ)
        password = src.resolve_password("source")
        if password is not None:
            env["MYSQL_PWD"] = password   # never on the command line, where ps would show it
        self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=env)
        self._stderr: list[bytes] = []
        self._err_thread = threading.Thread(target=self._drain_stderr, daemon=True)
        self._err_thread.start()
        self._buf = b""

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    def _send(self, text: str) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(text.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            raise self._failure("the client program exited") from None

    def _failure(self, what: str) -> SourceError:
        self.proc.poll()
        msg = b"".join(self._stderr).decode(errors="replace").strip()
        return SourceError(f"snapshot copy through {os.path.basename(str(self.proc.args[0]))} failed: "  # type: ignore[index]
                           f"{what}{': ' + msg if msg else ''}")

    def _read(self) -> bytes:
        assert self.proc.stdout is not None
        data = os.read(self.proc.stdout.fileno(), 1 << 20)
        if not data:
            self._err_thread.join(timeout=2)
            raise self._failure("unexpected end of output")
        return data

    def _until(self, marker: bytes, sink: Sink | None, progress: Progress | None) -> tuple[int, int]:
        """Pass output to ``sink`` up to the marker line; returns (lines, bytes) passed."""
        rows = size = 0
        tail = b"\n" + marker + b"\n"
        buf = b"\n" + self._buf     # a leading newline lets the marker match on the first line
        self._buf = b""
        while True:
            at = buf.find(tail)
            if at >= 0:
                data, self._buf = buf[1:at + 1], buf[at + len(tail):]
                if data and sink is not None:
                    sink(data)
                    n = data.count(b"\n")
                    rows += n
                    size += len(data)
                    if progress is not None:
                        progress(n, len(data))
                return rows, size
            # keep a tail that may hold the beginning of the marker
            cut = buf.rfind(b"\n", 0, max(len(buf) - len(tail), 0) + 1)
            if cut > 0 and sink is not None:
                data = buf[1:cut + 1]
                sink(data)
                n = data.count(b"\n")
                rows += n
                size += len(data)
                if progress is not None:
                    progress(n, len(data))
                buf = buf[cut:]
            buf += self._read()

    def begin(self, session_sql: list[str]) -> None:
        stmts = [*(s.rstrip(";") + ";" for s in session_sql),
                 "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;",
                 "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY;", _READY_SQL]
        self._send("\n".join(stmts))
        self._until(_READY, None, None)

    def stream(self, query: str, sink: Sink, progress: Progress) -> tuple[int, int]:
        self._send(query.rstrip(";") + ";\n" + _END_SQL)
        return self._until(_END, sink, progress)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
