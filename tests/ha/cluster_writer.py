"""Client for the cluster test: inserts one row per transaction into whichever node is primary.

Prints ``ok <id> <server> <unix time>`` after each acknowledged commit and
``err <unix time> <message>`` when a write or connection fails.  Stops on SIGTERM.
"""

from __future__ import annotations

import signal
import sys
import time

import psycopg

running = True


def _stop(*_: object) -> None:
    global running
    running = False


def main(conninfo: str) -> None:
    signal.signal(signal.SIGTERM, _stop)
    next_id = 1
    conn: psycopg.Connection | None = None
    while running:
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(conninfo, autocommit=True)
            row = conn.execute("INSERT INTO writes (id) VALUES (%s) RETURNING host(inet_server_addr())",
                               (next_id,)).fetchone()
            print(f"ok {next_id} {row[0] if row else '?'} {time.time():.3f}", flush=True)
            next_id += 1
            time.sleep(0.01)
        except psycopg.Error as exc:
            print(f"err {time.time():.3f} {str(exc).strip().splitlines()[0] if str(exc) else exc}", flush=True)
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1])
