#!/usr/bin/env python3
"""Replica benchmark: pgbaton against pg_chameleon 2.0.21 and a raw copy floor.

    .venv/bin/python bench/replica_bench.py --dir .bench [--rows 250000 --tables 4]
        [--only floor,chameleon,pgbaton] [--json out.json]

Starts a private MariaDB and PostgreSQL 15 under DIR/run, loads sysbench
tables into MariaDB, then for each selected phase measures the initial copy
and (for the two tools) CDC: idle latency, lag and catch-up around a live
sysbench oltp_write_only burst, and the drain rate of a backlog.  Every
server and process it starts is stopped by PID at the end, also on errors and
Ctrl-C.  See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

import psycopg
import pymysql
from rbench import cdc
from rbench.chameleon import Chameleon
from rbench.env import BenchEnv, BenchError
from rbench.floor import run_floor
from rbench.pgbaton_tool import Pgbaton, cli_available
from rbench.report import print_results
from rbench.verify import compare, create_marker

log = logging.getLogger("replica_bench")

PHASES = ("floor", "chameleon", "pgbaton")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", type=Path, default=Path(".bench"), help="bench folder (default .bench)")
    p.add_argument("--rows", type=int, default=250_000, help="rows per sysbench table (default 250000)")
    p.add_argument("--tables", type=int, default=4, help="sysbench tables (default 4)")
    p.add_argument("--only", default=",".join(PHASES),
                   help="comma-separated phases to run: floor, chameleon, pgbaton (default all)")
    p.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    p.add_argument("--burst-seconds", type=int, default=20, help="length of each sysbench burst (default 20)")
    p.add_argument("--burst-tps", type=int, default=1250,
                   help="sysbench --rate: transactions/s, 4 row changes each (default 1250 = ~5,000 rows/s)")
    p.add_argument("--idle-probes", type=int, default=5, help="single-row inserts for the idle latency (default 5)")
    p.add_argument("--no-cdc", action="store_true", help="measure the initial copies only")
    p.add_argument("--no-backlog", action="store_true", help="skip the backlog drain measurement")
    p.add_argument("--copy-workers", type=int, default=2, help="pgbaton copy_workers (default 2, like the floor)")
    p.add_argument("--keep-data", action="store_true", help="keep the servers' data folders after the run")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    args.only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(args.only) - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s) {', '.join(sorted(unknown))}; choose from {', '.join(PHASES)}")
    return args


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def measure_cdc(env: BenchEnv, tool: Any, args: argparse.Namespace, result: dict[str, Any]) -> None:
    """Idle latency, live burst and backlog drain for one tool; the tool's replica is stopped at the end."""
    try:
        tool.start_cdc()
        log.info("%s: idle latency (%s probes)", tool.name, args.idle_probes)
        result["idle"] = cdc.as_dict(cdc.measure_idle(env, tool, probes=args.idle_probes))
        log.info("%s: live burst %s s at %s tps", tool.name, args.burst_seconds, args.burst_tps)
        result["live"] = cdc.as_dict(cdc.measure_live(env, tool, args.burst_seconds, args.burst_tps))
        result["status_after_live"] = tool.status()
        if not args.no_backlog:
            log.info("%s: backlog drain (%s s burst while stopped)", tool.name, args.burst_seconds)
            result["backlog"] = cdc.as_dict(cdc.measure_backlog(env, tool, args.burst_seconds, args.burst_tps))
    finally:
        tool.stop_cdc()


def init_result(seconds: float, rows: int, floor: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {"seconds": seconds, "rows": rows, "rows_per_s": rows / seconds}
    if floor and floor.get("init"):
        out["vs_floor"] = seconds / floor["init"]["seconds"]
    return out


Runner = Callable[[BenchEnv, argparse.Namespace, dict[str, Any], dict[str, Any]], None]


def phase_floor(env: BenchEnv, args: argparse.Namespace, results: dict[str, Any], result: dict[str, Any]) -> None:
    floor = run_floor(env)
    result["init"] = {"seconds": floor.total_s, "rows": floor.rows, "rows_per_s": floor.rows_per_s,
                      "copy_s": floor.copy_s, "index_s": floor.index_s,
                      "split": f"{floor.copy_s:.2f} + {floor.index_s:.2f} s"}
    result["verified"] = floor.verified


def phase_tool(tool: Any, env: BenchEnv, args: argparse.Namespace, results: dict[str, Any],
               result: dict[str, Any]) -> None:
    result["notes"] = []
    tool.prepare()
    log.info("%s: initial copy of %s rows", tool.name, env.total_rows)
    seconds = tool.init_replica()
    result["init"] = init_result(seconds, env.total_rows, results.get("floor"))
    check = compare(env, tool.dbname, tool.schema)
    result["init_verified"] = check.describe()
    if not check.equal:
        result["notes"].append(f"after init the target differs from the source: {check.describe()}")
    if not args.no_cdc:
        try:
            measure_cdc(env, tool, args, result)
        finally:
            if hasattr(tool, "errors"):
                result["replay_errors"] = tool.errors()


def phase_chameleon(env: BenchEnv, args: argparse.Namespace, results: dict[str, Any],
                    result: dict[str, Any]) -> None:
    phase_tool(Chameleon(env, args.dir.resolve() / "chameleon-venv"), env, args, results, result)


def phase_pgbaton(env: BenchEnv, args: argparse.Namespace, results: dict[str, Any], result: dict[str, Any]) -> None:
    why = cli_available()
    if why is not None:
        result.update(pending=True, error=f"not measured: pgbaton CLI not usable yet ({why})")
        return
    phase_tool(Pgbaton(env, copy_workers=args.copy_workers), env, args, results, result)


RUNNERS: dict[str, Runner] = {
    "floor": phase_floor,
    "chameleon": phase_chameleon,
    "pgbaton": phase_pgbaton,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    signal.signal(signal.SIGTERM, _on_sigterm)
    args.dir.mkdir(parents=True, exist_ok=True)
    env = BenchEnv(args.dir / "run", tables=args.tables, rows=args.rows)
    results: dict[str, Any] = {
        "machine": env.machine(),
        "params": {"tables": args.tables, "rows": args.rows, "phases": args.only,
                   "burst_seconds": args.burst_seconds, "burst_tps": args.burst_tps,
                   "idle_probes": args.idle_probes, "copy_workers": args.copy_workers,
                   "command": " ".join(sys.argv)},
    }
    failed = False
    try:
        env.start_servers()
        log.info("sysbench prepare: %s tables x %s rows", args.tables, args.rows)
        results["prepare_s"] = env.prepare_source()
        create_marker(env)
        for phase in PHASES:
            if phase not in args.only:
                continue
            log.info("=== phase %s ===", phase)
            t0 = time.monotonic()
            result = results[phase] = {}
            try:
                RUNNERS[phase](env, args, results, result)
            except (BenchError, TimeoutError, RuntimeError, OSError, psycopg.Error, pymysql.MySQLError) as exc:
                failed = True
                log.error("phase %s failed: %s", phase, exc)
                if args.verbose:
                    traceback.print_exc()
                result["error"] = f"failed: {exc}"
            result["phase_s"] = time.monotonic() - t0
    except KeyboardInterrupt:
        log.error("interrupted: stopping servers")
        failed = True
    except BenchError as exc:
        log.error("%s", exc)
        failed = True
    finally:
        env.stop_servers(keep_data=args.keep_data)
        results["machine"]["loadavg_at_end"] = os.getloadavg()[0]
    print_results(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
        log.info("results written to %s", args.json)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
