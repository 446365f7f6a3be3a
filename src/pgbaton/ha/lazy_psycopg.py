"""psycopg, imported on its first use: the agent's calls that talk no SQL skip its import.

Importing psycopg takes about 0.25 s of CPU, most of an agent call.  The monitor and the
demote of a crashed primary (the first two steps of every failover) and a stop need no
SQL; on a loaded machine, where each call waits its turn for a CPU, that import alone cost
seconds of the failover.  The agent's modules write::

    if TYPE_CHECKING:
        import psycopg
    else:
        from pgbaton.ha import lazy_psycopg as psycopg

and use ``psycopg.connect``, ``psycopg.Error``, ``psycopg.errors.X`` as usual (an
``except psycopg.Error`` clause looks the name up only when an exception is raised).
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    value = getattr(importlib.import_module("psycopg"), name)
    globals()[name] = value
    return value
