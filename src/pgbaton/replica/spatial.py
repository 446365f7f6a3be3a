"""What ``replica init`` tells the user about spatial columns when the target has no PostGIS.

pgbaton does not create the extension itself: PostGIS is not a trusted extension (creating
it needs a superuser) and it adds hundreds of functions and a table to the database, which
is the DBA's decision.  With it, geometry columns become PostGIS ``geometry``; without it
they hold the WKB in ``bytea`` and this note says what that loses and how to change it.
"""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from pgbaton.mysql.model import MyTable
from pgbaton.mysql.typemap import GEOMETRY_TYPES
from pgbaton.replica import catalog as cat


def _listed(names: list[str], limit: int = 10) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def postgis_notes(conn: psycopg.Connection, tables: Sequence[MyTable]) -> list[str]:
    """One warning when the source has spatial columns and the target database has no PostGIS."""
    columns = [f"{t.db}.{t.name}.{c.name}" for t in tables for c in t.columns
               if c.data_type.lower() in GEOMETRY_TYPES]
    if not columns or cat.has_postgis(conn):
        return []
    indexes = [f"{t.db}.{t.name}.{i.name}" for t in tables for i in t.indexes if i.kind == "SPATIAL"]
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'), "
                       "current_database()").fetchone()
    conn.commit()
    available, dbname = (bool(row[0]), str(row[1])) if row else (False, "")
    lost = (f"{len(columns)} spatial column(s) ({_listed(columns)}) are stored as WKB in bytea without PostGIS "
            "in the target database: each value's SRID is lost")
    if indexes:
        lost += f" and SPATIAL index(es) {_listed(indexes)} are not created"
    how = ("PostGIS is installed on the server: CREATE EXTENSION postgis (as a superuser) in database "
           f"{dbname}, then run replica init --force" if available else
           "install PostGIS on the target server (Debian: postgresql-15-postgis-3), CREATE EXTENSION postgis "
           f"in database {dbname}, then run replica init --force")
    return [f"{lost}; {how}"]


def request_recopies(conn: psycopg.Connection, source: str) -> list[str]:
    """At replica start: tables whose spatial columns were made ``bytea`` because PostGIS was
    missing, now that the target has it, are re-copied (``replica.resync``) and come back
    as ``geometry``; their stored values were WKB, the codecs would now write EWKB text.
    The caller commits; returns the tables, ``db.table``."""
    if not cat.has_postgis(conn):
        return []
    from pgbaton.replica import resync

    found: list[str] = []
    for e in cat.tables(conn, source, ("replicating",)):
        spatial = {getattr(c, "target", None) or c.name for c in e.definition.columns
                   if c.data_type.lower() in GEOMETRY_TYPES}
        if not spatial:
            continue
        row = conn.execute(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = format('%%I.%%I', %s::text, %s::text)::regclass "
            "AND attname = ANY(%s) AND atttypid = 'bytea'::regtype AND NOT attisdropped",
            (e.dst_schema, e.dst_table, sorted(spatial))).fetchone()
        if row and row[0]:
            resync.request(conn, e.id, "PostGIS is in the target database now: its spatial columns become geometry")
            found.append(f"{e.definition.db}.{e.definition.name}")
    return found
