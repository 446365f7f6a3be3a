"""Names of every object pgbaton creates for a migration: all start with ``pgbaton_``."""

from __future__ import annotations

import hashlib
import re

PREFIX = "pgbaton_"
_UNSAFE = re.compile(r"[^a-z0-9_]+")


def object_name(migration: str, dbname: str, direction: str = "fwd") -> str:
    """Publication, slot and subscription name for one database of a migration.

    Slot names are cluster-wide and allow only ``[a-z0-9_]``, so the database name is
    folded and a short hash keeps two databases that fold alike apart.  At most 63 bytes.
    """
    digest = hashlib.sha1(dbname.encode()).hexdigest()[:6]
    folded = _UNSAFE.sub("_", dbname.lower()).strip("_")[:16] or "db"
    name = f"{PREFIX}{migration[:24]}_{direction}_{folded}_{digest}"
    return name[:63]


def sync_slot_pattern(subscription_oid: int) -> str:
    """LIKE pattern of the table-sync slots PostgreSQL creates for a subscription."""
    return f"pg\\_{subscription_oid}\\_sync\\_%"
