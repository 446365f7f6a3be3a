"""Progress of long copies: a rich progress bar on a terminal, log lines otherwise."""

from __future__ import annotations

import logging
import sys
import threading
import time
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

log = logging.getLogger(__name__)


class CopyProgress:
    """Thread-safe counters of rows and bytes copied against an expected row total."""

    def __init__(self, expected_rows: int, tables: int, *, show: bool | None = None) -> None:
        self.expected = max(expected_rows, 1)
        self.tables = tables
        self.rows = 0
        self.bytes = 0
        self.tables_done = 0
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._last_log = self._started
        self._show = sys.stderr.isatty() if show is None else show
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> CopyProgress:
        if self._show:
            self._progress = Progress(
                TextColumn("[bold]copy"), BarColumn(), TextColumn("{task.completed:,.0f}/{task.total:,.0f} rows"),
                TransferSpeedColumn(), TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[tables]}"),
                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("copy", total=self.expected, rate="", tables="")
        return self

    def __exit__(self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def advance(self, rows: int, size: int) -> None:
        with self._lock:
            self.rows += rows
            self.bytes += size
            self._report()

    def table_done(self) -> None:
        with self._lock:
            self.tables_done += 1
            self._report(force=self._progress is None)

    def _report(self, force: bool = False) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = self.rows / elapsed
        if self._progress is not None and self._task is not None:
            self._progress.update(
                self._task, completed=min(self.rows, self.expected), total=max(self.expected, self.rows),
                rate=f"{rate:,.0f} rows/s", tables=f"{self.tables_done}/{self.tables} tables",
            )
            # the bar's byte speed column reads task speed from 'completed'; keep bytes in the summary
            return
        now = time.monotonic()
        if force or now - self._last_log >= 5:
            self._last_log = now
            eta = (self.expected - self.rows) / rate if rate > 0 and self.rows < self.expected else 0
            log.info("copy: %s rows (%.1f MiB), %s rows/s, %d/%d tables, ETA %.0f s", f"{self.rows:,}",
                     self.bytes / 2**20, f"{rate:,.0f}", self.tables_done, self.tables, eta)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started
