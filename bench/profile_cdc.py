"""Where does CDC backlog time go?  A developer tool, not part of the benchmark table.

    .venv/bin/python bench/profile_cdc.py --dir .bench/profile [--rows 20000 --burst-seconds 15]

Starts private servers, prepares sysbench tables, initializes a pgbaton replica, writes a
backlog with the replica stopped, then measures (1) mysql-replication alone reading the
backlog and (2) pgbaton draining it in-process under cProfile, and prints the hot spots.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rbench.env import BenchEnv  # noqa: E402

from pgbaton.config import parse_config  # noqa: E402
from pgbaton.replica import catalog as cat  # noqa: E402
from pgbaton.replica.init import add_source, init_replica  # noqa: E402
from pgbaton.replica.run import Replica  # noqa: E402
from pgbaton.replica.status import status  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", type=Path, default=Path(".bench/profile"))
    ap.add_argument("--rows", type=int, default=20000)
    ap.add_argument("--burst-seconds", type=int, default=15)
    ap.add_argument("--tps", type=int, default=0, help="sysbench --rate (0 = as fast as it goes)")
    ap.add_argument("--no-profile", action="store_true")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    env = BenchEnv(args.dir, rows=args.rows)
    env.start_servers()
    try:
        env.prepare_source()
        env.recreate_target_db("prof")
        cfg = parse_config({
            "target": {"host": "127.0.0.1", "port": env.pg.port, "dbname": "prof"},
            "sources": {"sb": {"port": env.mariadb.port, "databases": {"sbtest": "sbtest"}, "server_id": 777}},
        })
        add_source(cfg, "sb")
        init_replica(cfg, "sb", show_progress=False)
        burst = env.burst(args.burst_seconds, args.tps)
        print(f"backlog: {burst.row_changes} row changes in {burst.seconds:.1f} s")
        _raw_read(cfg)
        _drain(cfg, burst.row_changes, not args.no_profile)
    finally:
        env.stop_servers()


def _raw_read(cfg) -> None:  # type: ignore[no-untyped-def]
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.event import XidEvent
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    conn = cat.catalog_connection(cfg)
    row = cat.source_row(conn, "sb")
    conn.close()
    src = cfg.source("sb")
    t0 = time.monotonic()
    stream = BinLogStreamReader(
        connection_settings={"host": "127.0.0.1", "port": src.port, "user": "root", "password": ""},
        server_id=778, resume_stream=True, log_file=row.read_file, log_pos=row.read_pos, blocking=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent], enable_logging=False)
    n = 0
    for ev in stream:
        if hasattr(ev, "rows"):
            n += len(ev.rows)
    stream.close()
    dt = time.monotonic() - t0
    print(f"mysql-replication alone: {n} row changes in {dt:.2f} s = {n / dt:,.0f}/s")


def _drain(cfg, expected: int, profile: bool) -> None:  # type: ignore[no-untyped-def]
    rep = Replica(cfg, "sb")
    prof = cProfile.Profile() if profile else None
    result: dict[str, float] = {}

    def run() -> None:
        if prof:
            prof.enable()
        rep.run()
        if prof:
            prof.disable()

    t0 = time.monotonic()
    th = threading.Thread(target=run)
    th.start()
    read_done = None
    while True:
        time.sleep(0.2)
        st = status(cfg, "sb")[0]
        if read_done is None and st["read_lag_s"] == 0:
            read_done = time.monotonic() - t0
            print(f"  binlog read and stored after {read_done:.2f} s; {st['pending_events']} events wait for replay")
        if st["read_lag_s"] == 0 and st["pending_events"] == 0:
            break
    result["drain"] = time.monotonic() - t0
    rep.request_stop()
    th.join()
    print(f"pgbaton drain: {expected} row changes in {result['drain']:.2f} s = {expected / result['drain']:,.0f}/s")
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(35)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
