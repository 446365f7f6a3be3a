"""The lag of the last minutes, kept in memory for the status page."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from pgbaton.observe.snapshot import Snapshot


class LagHistory:
    """Per series (a replica source, a migrated database): (time, lag seconds, lag bytes or
    pending changes), oldest first, no older than ``keep_seconds``."""

    def __init__(self, keep_seconds: float) -> None:
        self.keep = keep_seconds
        self._lock = threading.Lock()
        self._series: dict[str, deque[tuple[float, float | None, float | None]]] = {}

    def add(self, snap: Snapshot) -> None:
        t = snap.taken_at
        points: dict[str, tuple[float | None, float | None]] = {}
        for s in snap.sources:
            st = s.status
            if st["state"] == "not registered":
                continue
            lag = max(x for x in (st.get("read_lag_s"), st.get("replay_lag_s"), 0.0) if x is not None)
            points[f"replica/{s.name}"] = (float(lag), float(st.get("pending_events") or 0))
        for m in snap.migrations:
            for d in m.databases:
                points[f"migrate/{m.name}/{d['database']}"] = (d.get("lag_seconds"), d.get("lag_bytes"))
        with self._lock:
            for key, (seconds, amount) in points.items():
                series = self._series.setdefault(key, deque())
                series.append((t, seconds, amount))
            for series in self._series.values():
                while series and series[0][0] < t - self.keep:
                    series.popleft()
            for key in [k for k, v in self._series.items() if not v]:
                del self._series[key]

    def as_dict(self) -> dict[str, list[list[Any]]]:
        with self._lock:
            return {k: [list(p) for p in v] for k, v in self._series.items()}
