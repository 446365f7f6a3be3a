"""Synchronous replication and replication slots on the primary."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg
else:
    from pgbaton.ha import lazy_psycopg as psycopg


log = logging.getLogger(__name__)


def apply_sync_names(conn: psycopg.Connection, wanted: str) -> bool:
    """Set synchronous_standby_names with ALTER SYSTEM + reload when it differs; True if changed."""
    row = conn.execute("SELECT setting FROM pg_settings WHERE name = 'synchronous_standby_names'").fetchone()
    current = str(row[0]) if row else ""
    if current == wanted:
        return False
    from psycopg import sql  # here, not at the top: the agent loads psycopg only when it talks SQL

    conn.execute(sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(wanted)))
    conn.execute("SELECT pg_reload_conf()")
    log.info("synchronous_standby_names: %r -> %r", current, wanted)
    return True


def ensure_slots(conn: psycopg.Connection, names: list[str]) -> list[str]:
    """Create the physical slots that are missing (reserving WAL at once); returns the created ones."""
    existing = {str(r[0]) for r in conn.execute("SELECT slot_name FROM pg_replication_slots").fetchall()}
    created = []
    for name in names:
        if name not in existing:
            conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
            created.append(name)
            log.info("created physical replication slot %s", name)
    return created


def create_slot_remote(dsn: str, name: str) -> None:
    """Create a physical slot on a primary over a replication connection; an existing one is fine."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(f'CREATE_REPLICATION_SLOT "{name}" PHYSICAL RESERVE_WAL')
            log.info("created physical replication slot %s on the primary", name)
        except psycopg.errors.DuplicateObject:
            log.debug("slot %s already exists on the primary", name)
