#!/usr/bin/env python3
"""Seeded fault injection in a real two-node Pacemaker cluster: ``ha_torture.py --seed 7 --iterations 50``.

Needs root, pacemaker, corosync, iproute2 and psql (``make venv-full``).  Prints a Markdown
table by fault; ``--results`` keeps every outcome as JSON.  Exit status 1 when a commit was
lost, a fault caused more promotions than it explains (a loop), or the cluster did not settle.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.ha.torture import Outcome, run, table  # noqa: E402

from pgbaton.sandbox.ha_pacemaker import usable  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--results", type=Path, help="write every outcome to this JSON file")
    parser.add_argument("--max-minutes", type=float, help="start no new fault after this long")
    parser.add_argument("--faults", help="comma-separated faults to draw from (default: all)")
    args = parser.parse_args()
    # a TERM still tears the cluster down (namespaces, daemons, servers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s")
    if not usable():
        print("needs root, pacemaker, corosync, iproute2 and psql", file=sys.stderr)
        return 2

    def show(o: Outcome) -> None:
        print(f"{o.iteration:3d} {o.fault:18s} {o.target:10s} failover {o.failover_s}s stall {o.stall_s}s "
              f"steady {o.steady_s}s promotions {o.promotions} lost {o.lost} load {o.load} "
              f"{o.error or o.detail}", flush=True)

    result = run(args.seed, args.iterations, args.results, show,
                 args.max_minutes * 60 if args.max_minutes else None,
                 tuple(args.faults.split(",")) if args.faults else None)
    print()
    print(table(result))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
