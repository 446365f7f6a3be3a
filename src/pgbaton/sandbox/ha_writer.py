"""Client of the HA cluster (`make demo-ha`, the cluster tests): inserts one row per transaction
into whichever node is primary (``python -m pgbaton.sandbox.ha_writer CONNINFO [FIRST_ID]``).

Prints one line per attempt, each id tried once only:

- ``ok <id> <server> <unix time> <timeline>``: the commit was acknowledged;
- ``fail <id> <unix time> <message>``: the server refused it (the row is not there);
- ``unknown <id> <unix time> <message>``: the connection broke while the commit was in
  flight, so it may or may not have committed; the checker looks afterwards (never retried:
  a retry of a commit that did happen only fails with "duplicate key", for ever);
- ``err <unix time> <message>``: no connection.

Stops on SIGTERM.
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


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(conninfo: str, start_id: int = 1) -> None:
    signal.signal(signal.SIGTERM, _stop)
    next_id = start_id
    conn: psycopg.Connection | None = None
    while running:
        if conn is None or conn.closed:
            try:
                conn = psycopg.connect(conninfo, autocommit=True)
            except psycopg.Error as exc:
                print(f"err {time.time():.3f} {_first_line(exc)}", flush=True)
                conn = None
                time.sleep(0.1)
                continue
        row_id, next_id = next_id, next_id + 1
        try:
            row = conn.execute("INSERT INTO writes (id) VALUES (%s) RETURNING host(inet_server_addr()),"
                               " substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8)", (row_id,)).fetchone()
        except psycopg.OperationalError as exc:
            # the connection is gone: the commit may have happened or not
            print(f"unknown {row_id} {time.time():.3f} {_first_line(exc)}", flush=True)
            conn.close()
            conn = None
            time.sleep(0.1)
            continue
        except psycopg.Error as exc:
            # an error reported by the server: autocommit, so nothing was committed
            print(f"fail {row_id} {time.time():.3f} {_first_line(exc)}", flush=True)
            if conn.closed or conn.info.transaction_status is psycopg.pq.TransactionStatus.UNKNOWN:
                conn = None
            time.sleep(0.1)
            continue
        print(f"ok {row_id} {row[0] if row else '?'} {time.time():.3f} {int(str(row[1]), 16) if row else 0}",
              flush=True)
        time.sleep(0.01)


def parse(text: str) -> tuple[set[int], set[int]]:
    """(acknowledged ids, ids of unknown outcome) from the writer's output."""
    acked: set[int] = set()
    unknown: set[int] = set()
    for line in text.splitlines():
        parts = line.split()
        if parts[:1] == ["ok"]:
            acked.add(int(parts[1]))
        elif parts[:1] == ["unknown"]:
            unknown.add(int(parts[1]))
    return acked, unknown


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1)
