"""Row decoding speed: mysql-replication's own decoding vs. pgbaton.mysql.fastrows.

    .venv/bin/python bench/decode_bench.py [--dir .bench/decode] [--rows 20000] [--seconds 15] [--repeat 3]

Starts a private MariaDB (loopback, free port, stopped by PID at the end; PostgreSQL is
not needed), prepares 4 sysbench tables of --rows rows, writes a backlog with
``sysbench oltp_write_only`` (4 threads, unthrottled) for --seconds, then reads that
backlog --repeat times in each mode, alternating, and prints the best run of each:

  * ``stream``: BinLogStreamReader over the backlog, touching ``ev.rows`` of every row
    event, as pgbaton's reader does (network read, event headers, table maps - with
    pgbaton's table map cache in both modes - and row decoding);
  * ``decode``: the row events are fetched first, then only ``ev.rows`` is timed
    (the part fastrows replaces; the fetched events are frozen out of the garbage
    collector's scans while timing, in both modes).

For each: row changes, seconds, row changes/s for ``library`` and ``fastrows``, and the
speed-up.  The decoded rows of both modes are compared as well (``identical: yes``).
"""

from __future__ import annotations

import argparse
import gc
import logging
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pymysqlreplication import BinLogStreamReader  # noqa: E402
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent  # noqa: E402
from rbench.env import SOURCE_DB, BenchEnv  # noqa: E402

from pgbaton.mysql import fastrows, tablemap  # noqa: E402

ROW_EVENTS = [WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent]


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _stream(env: BenchEnv, start: tuple[str, int], server_id: int) -> BinLogStreamReader:
    return BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": env.mariadb.port, "user": "root", "password": ""},
        server_id=server_id, log_file=start[0], log_pos=start[1], resume_stream=True, blocking=False,
        only_events=ROW_EVENTS, only_schemas=[SOURCE_DB], enable_logging=False)


def _set_mode(fast: bool) -> None:
    tablemap.install()
    if fast:
        if not fastrows.install():
            raise SystemExit("fastrows.install() refused this mysql-replication")
    else:
        fastrows.uninstall()


def measure_stream(env: BenchEnv, start: tuple[str, int], fast: bool) -> tuple[int, float]:
    _set_mode(fast)
    t0 = time.perf_counter()
    stream = _stream(env, start, 4711)
    n = 0
    try:
        for ev in stream:
            n += len(ev.rows)
    finally:
        stream.close()
    return n, time.perf_counter() - t0


def measure_decode(env: BenchEnv, start: tuple[str, int], fast: bool) -> tuple[int, float, list[Any]]:
    _set_mode(fast)
    stream = _stream(env, start, 4712)
    try:
        events = list(stream)
    finally:
        stream.close()
    # the fetched events are a large heap the garbage collector would scan again and again
    # while rows are made; a streaming reader has no such heap, so keep it out of the timing
    gc.collect()
    gc.freeze()
    try:
        t0 = time.perf_counter()
        rows = [ev.rows for ev in events]
        dt = time.perf_counter() - t0
    finally:
        gc.unfreeze()
    return sum(len(r) for r in rows), dt, rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", type=Path, default=Path(".bench/decode"))
    ap.add_argument("--rows", type=int, default=20000, help="rows per sysbench table (4 tables)")
    ap.add_argument("--seconds", type=int, default=15, help="length of the oltp_write_only burst")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    signal.signal(signal.SIGTERM, _on_sigterm)
    args.dir.mkdir(parents=True, exist_ok=True)
    env = BenchEnv(args.dir / "run", rows=args.rows)
    if (env.base / "mariadb").exists():
        shutil.rmtree(env.base / "mariadb")
    env.mariadb.start()  # only the source: nothing is written to PostgreSQL here
    try:
        env.prepare_source()
        with env.mysql() as conn, conn.cursor() as cur:
            cur.execute("SHOW MASTER STATUS")
            row = cur.fetchone()
        start = (str(row[0]), int(row[1]))
        burst = env.burst(args.seconds, 0)
        print(f"backlog: {burst.row_changes} row changes ({burst.transactions} transactions) "
              f"written in {burst.seconds:.1f} s by sysbench oltp_write_only")
        best: dict[tuple[str, bool], tuple[int, float]] = {}
        decoded: dict[bool, list[Any]] = {}
        for _ in range(args.repeat):
            for fast in (False, True):
                n, dt = measure_stream(env, start, fast)
                if ("stream", fast) not in best or dt < best["stream", fast][1]:
                    best["stream", fast] = (n, dt)
                n, dt, rows = measure_decode(env, start, fast)
                decoded[fast] = rows
                if ("decode", fast) not in best or dt < best["decode", fast][1]:
                    best["decode", fast] = (n, dt)
        fastrows.uninstall()
        print(f"best of {args.repeat} runs each (python {sys.version.split()[0]}):")
        for what in ("stream", "decode"):
            (n0, t0), (n1, t1) = best[what, False], best[what, True]
            print(f"  {what:6}  library : {n0:8d} rows in {t0:6.2f} s = {n0 / t0:10,.0f} rows/s")
            print(f"  {what:6}  fastrows: {n1:8d} rows in {t1:6.2f} s = {n1 / t1:10,.0f} rows/s"
                  f"   (x{t0 / t1:.2f})")
        print(f"identical: {'yes' if decoded[False] == decoded[True] else 'NO'}; fastrows stats {fastrows.stats}")
    finally:
        env.mariadb.stop()
        shutil.rmtree(env.mariadb.datadir, ignore_errors=True)


if __name__ == "__main__":
    main()
