"""How the command line writes: consoles, JSON, log lines on stderr, errors.

- On a terminal, rich wraps and sizes tables to the window.  Into a pipe or a file
  nothing is wrapped or cut: a line is as long as its content (grep and logs see whole
  table names and whole error messages).
- Log lines on stderr: warnings and errors only, unless ``--verbose`` (INFO) or
  ``--debug``.  Daemon log files follow ``log_level`` from the configuration.
- ``--json``: every outcome is a JSON document on stdout, failures included
  (``{"ok": false, "error": ..., "type": ...}``).
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console, ConsoleDimensions
from rich.markup import escape

# wide enough for any table row; rich needs a number
_UNBOUNDED = 100_000


class _Console(Console):
    """A rich console that does not wrap or cut when it does not write to a terminal."""

    @property  # type: ignore[override]
    def size(self) -> ConsoleDimensions:
        if not self.is_terminal:
            return ConsoleDimensions(_UNBOUNDED, 25)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        Console.size.fset(self, new_size)  # type: ignore[attr-defined]


out = _Console()
err = _Console(stderr=True)


def print_json(data: Any) -> None:
    """One JSON document on stdout (indented, never wrapped)."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit(data: Any, as_json: bool) -> bool:
    """Print ``data`` as JSON when asked; True when printed (the caller then prints nothing else)."""
    if as_json:
        print_json(data)
    return as_json


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def error_line(message: str) -> None:
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True)


def error_document(exc: BaseException) -> dict[str, Any]:
    return {"ok": False, "error": str(exc) or exc.__class__.__name__, "type": exc.__class__.__name__}


def wants_json(argv: list[str]) -> bool:
    """Whether the command line asks for JSON (``--json`` before any ``--``)."""
    for arg in argv:
        if arg == "--":
            return False
        if arg == "--json":
            return True
    return False


# -- logging -------------------------------------------------------------------------------
class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the moment of each record (it may be replaced,
    e.g. by a test runner, after the handler was made)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class ThrottleProgress(logging.Filter):
    """At most one copy progress line every ``seconds`` (a copy of many small tables
    would otherwise log one line per table within a fraction of a second)."""

    def __init__(self, seconds: float = 5.0) -> None:
        super().__init__()
        self.seconds = seconds
        self._last = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name != "pgbaton.replica.progress":
            return True
        now = time.monotonic()
        if now - self._last < self.seconds:
            return False
        self._last = now
        return True


class _ShortFormatter(logging.Formatter):
    """``warning: message``, as the CLI prints its own errors (a one-shot command on stderr)."""

    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


def setup_logging(level: int = logging.WARNING, path: Path | None = None, *, short: bool = False) -> None:
    """Replace pgbaton's own log handler (other handlers, e.g. a test runner's, stay).
    ``short``: lines without time and logger name (one-shot commands on stderr)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_pgbaton", False):
            root.removeHandler(h)
            h.close()
    handler: logging.Handler = logging.FileHandler(path) if path else _StderrHandler()
    handler._pgbaton = True  # type: ignore[attr-defined]
    handler.setFormatter(_ShortFormatter() if short and path is None
                         else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(ThrottleProgress())
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("pymysqlreplication", "psycopg"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def stderr_level(debug: bool, verbose: bool, configured: str | None = None, long_running: bool = False) -> int:
    """The level of log lines on stderr.  A one-shot command is quiet (warnings) unless asked;
    a configured level may make it quieter still, never louder.  A long-running command in
    the foreground (its log is its output, as a daemon's log file) logs at the configured
    level, INFO by default."""
    if debug:
        return logging.DEBUG
    if verbose:
        return logging.INFO
    level = getattr(logging, configured.upper(), logging.INFO) if configured else None
    if long_running:
        return level if level is not None else logging.INFO
    return max(logging.WARNING, level if level is not None else logging.WARNING)


# commands whose foreground run lasts until stopped
LONG_RUNNING = {("replica", "start"), ("migrate", "run"), ("serve",), ("metrics", "serve")}
_ROOT_OPTIONS_WITH_VALUE = {"-c", "--config"}


def command_path(argv: list[str]) -> tuple[str, ...]:
    """The command words of a command line (``pgbaton -c F replica start -s x`` -> replica, start)."""
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--":
            break
        if arg.startswith("-"):
            skip = not words and arg in _ROOT_OPTIONS_WITH_VALUE
            continue
        words.append(arg)
        if len(words) == 2:
            break
    return tuple(words)


def is_long_running(argv: list[str]) -> bool:
    """Whether the command runs in the foreground until stopped (``--daemon`` returns at once,
    ``--once`` after one pass: both are one-shot commands for the one who typed them)."""
    path = command_path(argv)
    if path[:1] == ("serve",):
        return True
    if path == ("migrate", "start"):
        return "--follow" in argv
    words = set(argv[:argv.index("--")] if "--" in argv else argv)
    if words & {"--daemon", "-d", "--once"}:
        return False
    return path in LONG_RUNNING
