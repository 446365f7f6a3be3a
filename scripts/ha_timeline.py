#!/usr/bin/env python3
"""Where a failover's seconds go: ``ha_timeline.py SANDBOX [--since UNIXTIME] [--seconds 60]``.

SANDBOX is a test cluster's folder (``PGBATON_KEEP_SANDBOX=1`` keeps it, e.g.
``/tmp/pgbaton-pcmk-xxxx``).  Without ``--since`` the timeline starts at the writer's first
failed commit (the fault).  Prints the merged Pacemaker, agent, PostgreSQL and writer
events, then the seconds from the fault to each step (tests/ha/timeline.py).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from tests.ha.timeline import Logs, phases, render  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sandbox", type=Path)
    parser.add_argument("--since", type=float, help="unix time of the fault (default: the first failed commit)")
    parser.add_argument("--seconds", type=float, default=60.0, help="how far to follow (default 60)")
    args = parser.parse_args()
    events = Logs(args.sandbox).read()
    since = args.since
    if since is None:
        since = next((e.at for e in events if e.source == "writer" and not e.text.startswith("ok ")), None)
        if since is None:
            print("no failed commit in writer.out: give --since", file=sys.stderr)
            return 2
        since -= 0.001
    until = since + args.seconds
    print(render(events, since, until))
    print()
    for step, seconds in sorted(phases(events, since, until).items(), key=lambda kv: kv[1]):
        print(f"{seconds:8.2f} s  {step}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
