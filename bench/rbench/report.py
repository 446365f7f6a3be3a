"""The results table (rich) printed at the end of a bench run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.table import Table

# The figures for pg_chameleon on a 2-core machine, and pgbaton's goals.
REFERENCE: dict[str, str] = {
    "init_s": "10.9 s (floor 5.5 s)",
    "idle_median_s": "0.7 s",
    "live_max_lag_s": "27-34 s",
    "live_e2e_rate": "2,500-2,900/s",
    "backlog_rate": "2,500-2,900/s",
}
GOALS: dict[str, str] = {
    "init_s": "<= 1.2 x floor",
    "idle_median_s": "< 0.2 s",
    "live_max_lag_s": "< 1 s at ~5,000/s",
    "backlog_rate": ">= 30,000/s",
}

Getter = Callable[[dict[str, Any]], Any]


def _get(path: str) -> Getter:
    def getter(result: dict[str, Any]) -> Any:
        value: Any = result
        for key in path.split("."):
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return value
    return getter


def _secs(v: Any) -> str:
    return "" if v is None else f"{v:.2f} s"


def _rate(v: Any) -> str:
    return "" if v is None else f"{v:,.0f}/s"


def _count(v: Any) -> str:
    return "" if v is None else f"{v:,}"


def _ratio(v: Any) -> str:
    return "" if v is None else f"{v:.2f} x"


ROWS: list[tuple[str, str, Getter, Callable[[Any], str]]] = [
    ("init_s", "initial copy: wall time", _get("init.seconds"), _secs),
    ("", "  copy / index build (floor)", lambda r: (r.get("init") or {}).get("split"), lambda v: v or ""),
    ("", "initial copy: rows/s", _get("init.rows_per_s"), _rate),
    ("", "initial copy vs floor", _get("init.vs_floor"), _ratio),
    ("idle_median_s", "idle change: latency (median)", _get("idle.median_s"), _secs),
    ("", "idle change: latency (max)", _get("idle.max_s"), _secs),
    ("", "live burst: row changes", _get("live.row_changes"), _count),
    ("", "live burst: source rate", _get("live.source_rate"), _rate),
    ("live_max_lag_s", "live burst: max lag", _get("live.max_lag_s"), _secs),
    ("", "live burst: catch-up after burst end", _get("live.catch_up_after_burst_s"), _secs),
    ("live_e2e_rate", "live burst: end-to-end rate", _get("live.e2e_rate"), _rate),
    ("", "backlog: row changes", _get("backlog.row_changes"), _count),
    ("", "backlog: drain time (start -> caught up)", _get("backlog.drain_s"), _secs),
    ("backlog_rate", "backlog: drain rate", _get("backlog.drain_rate"), _rate),
    ("", "backlog: start -> first change visible", _get("backlog.first_change_s"), _secs),
    ("", "backlog: rate after first change", _get("backlog.rate_after_first"), _rate),
]

TOOLS = [("floor", "raw floor"), ("chameleon", "pg_chameleon 2.0.21"), ("pgbaton", "pgbaton")]


def print_results(results: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console(width=None if Console().is_terminal else 150)
    machine = results.get("machine", {})
    params = results.get("params", {})
    table = Table(title=(f"pgbaton replica bench: {params.get('tables')} x {params.get('rows'):,} rows; "
                         f"{machine.get('cores')} cores, {machine.get('cpu')}; {machine.get('date')}"))
    table.add_column("measure")
    for _, title in TOOLS:
        table.add_column(title, justify="right")
    table.add_column("issue: pg_chameleon", justify="right", style="dim")
    table.add_column("goal: pgbaton", justify="right", style="dim")
    for key, label, getter, fmt in ROWS:
        cells = []
        for tool, _ in TOOLS:
            result = results.get(tool) or {}
            cells.append(fmt(getter(result)) if result else "")
        if not any(cells):
            continue
        table.add_row(label, *cells, REFERENCE.get(key, ""), GOALS.get(key, ""))
    console.print(table)
    for tool, title in TOOLS:
        result = results.get(tool) or {}
        for note in result.get("notes", []):
            console.print(f"[bold]{title}[/bold]: {note}")
        if result.get("error"):
            console.print(f"[bold red]{title}[/bold red]: {result['error']}")
