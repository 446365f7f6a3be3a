"""MySQL identifiers to PostgreSQL identifiers: the one mapping every part uses.

MySQL allows names of up to 64 characters (up to 256 bytes in UTF-8); PostgreSQL
keeps 63 bytes of a name and cuts the rest without an error.  Six column names are
reserved by PostgreSQL for system columns.  Everything else MySQL accepts (any
Unicode, quotes, spaces, dots, reserved words) is legal in a quoted PostgreSQL
identifier, and pgbaton always quotes, so those names stay as they are.

The rules, applied the same way by ``replica init``, DDL replay, sync-tables,
verify and detach:

1. a name of at most 63 bytes that is not a system column name is kept;
2. a longer name is cut on a character boundary to 54 bytes and ends with ``_`` and
   the first 8 hex digits of the SHA-1 of the whole name, so two names equal in
   their first 63 bytes stay distinct;
3. a column named ``tableoid``, ``xmin``, ``cmin``, ``xmax``, ``cmax`` or ``ctid``
   (exactly, in lower case: PostgreSQL's quoted ``"XMIN"`` is an ordinary name) gets
   ``_`` appended;
4. should the result still equal another column's (or table's) name, ``_2``, ``_3``,
   ... is appended (names that need no change keep theirs first).

The names chosen are recorded in the catalog (``tables.dst_table`` and each
column's ``pg_name`` in ``tables.definition``) and shown by ``status --json``; a
column keeps its recorded name through later DDL.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

NAMEDATALEN = 63                      # bytes PostgreSQL keeps of a name
SYSTEM_COLUMNS = frozenset({"tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
_HEAD = NAMEDATALEN - 9               # room for "_" + 8 hex digits


def _cut(name: str, limit: int) -> str:
    return name.encode("utf-8")[:limit].decode("utf-8", "ignore")


def fit(name: str) -> str:
    """``name`` within 63 bytes: unchanged when it fits, else cut and hashed (rule 2)."""
    raw = name.encode("utf-8")
    if len(raw) <= NAMEDATALEN:
        return name
    return f"{_cut(name, _HEAD)}_{hashlib.sha1(raw).hexdigest()[:8]}"


def natural_column(name: str) -> str:
    """The PostgreSQL name of a column before collisions are considered (rules 1-3)."""
    if name in SYSTEM_COLUMNS:
        return name + "_"
    return fit(name)


def natural_table(name: str) -> str:
    return fit(name)


def _unique(wanted: str, taken: set[str]) -> str:
    if wanted not in taken:
        return wanted
    n = 2
    while True:
        suffix = f"_{n}"
        candidate = _cut(wanted, NAMEDATALEN - len(suffix)) + suffix
        if candidate not in taken:
            return candidate
        n += 1


def column_names(names: Iterable[str], recorded: dict[str, str] | None = None) -> dict[str, str]:
    """MySQL column name -> PostgreSQL column name for one table, distinct (rule 4).

    ``recorded`` holds names chosen earlier (kept, so a column's PostgreSQL name
    never changes under it); new columns whose name needs no change come next, the
    rest after them in order."""
    order = list(names)
    recorded = recorded or {}
    out: dict[str, str] = {}
    taken: set[str] = set()
    for n in order:
        if n in recorded and recorded[n] not in taken:
            out[n] = recorded[n]
            taken.add(recorded[n])
    for n in order:
        if n not in out and natural_column(n) == n and n not in taken:
            out[n] = n
            taken.add(n)
    for n in order:
        if n not in out:
            out[n] = _unique(natural_column(n), taken)
            taken.add(out[n])
    return {n: out[n] for n in order}


def table_name(name: str, taken: Iterable[str] = ()) -> str:
    """The PostgreSQL name of a table, distinct from ``taken`` (names already used in its schema)."""
    return _unique(natural_table(name), set(taken))
