"""The migration catalog on the target: which databases pgbaton created and how far it got."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from pgbaton.errors import PgbatonError
from pgbaton.migrate import sqlfiles
from pgbaton.migrate.lifecycle import TRANSITIONS, Event, IllegalTransition, State, after


@dataclass(frozen=True)
class DbRecord:
    dbname: str
    created_db: bool
    schema_copied: bool
    subscribed: bool
    queued: bool = False


class Catalog:
    """Rows of one migration in ``schema`` on an open (autocommit) connection to the target."""

    def __init__(self, conn: psycopg.Connection, schema: str, migration: str) -> None:
        self.conn, self.schema, self.migration = conn, schema, migration
        # a record announces a step before it acts (an intent a rerun after a crash reads): it must
        # be on disk before the step acts, also where the server commits asynchronously (a kill -9
        # of the target after a switch step once lost "point_switcher started", and the rerun
        # resumed the clients without pointing PgBouncer back: rows written on the target)
        conn.execute("SET synchronous_commit = on")

    def _t(self, table: str) -> sql.Composed:
        return sql.SQL("{}.{}").format(sql.Identifier(self.schema), sql.Identifier(table))

    def exists(self) -> bool:
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                (f"{self.schema}.migration_database",)).fetchone()
        return bool(row and row[0])

    def ensure(self) -> None:
        with self.conn.transaction():
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext('pgbaton_migrate_catalog'))")
            self.conn.execute(sqlfiles.with_schema("catalog", self.schema))

    def begin(self, databases: list[str]) -> None:
        with self.conn.transaction():
            self.conn.execute(sql.SQL("INSERT INTO {} (name) VALUES (%s) ON CONFLICT DO NOTHING")
                              .format(self._t("migration")), (self.migration,))
            for db in databases:
                self.conn.execute(sql.SQL("INSERT INTO {} (migration, dbname) VALUES (%s, %s) ON CONFLICT DO NOTHING")
                                  .format(self._t("migration_database")), (self.migration, db))

    def databases(self) -> dict[str, DbRecord]:
        if not self.exists():
            return {}
        rows = self.conn.execute(sql.SQL("SELECT dbname, created_db, schema_copied, subscribed, queued FROM {} "
                                         "WHERE migration = %s")
                                 .format(self._t("migration_database")), (self.migration,)).fetchall()
        return {r[0]: DbRecord(r[0], r[1], r[2], r[3], r[4]) for r in rows}

    def mark(self, dbname: str, **flags: bool) -> None:
        sets = sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(k)) for k in flags)
        self.conn.execute(sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE migration = %s AND dbname = %s")
                          .format(self._t("migration_database"), sets), (*flags.values(), self.migration, dbname))

    def _row(self) -> tuple[State, State | None]:
        if not self.exists():
            return State.not_started, None
        row = self.conn.execute(sql.SQL("SELECT state, switch_from FROM {} WHERE name = %s")
                                .format(self._t("migration")), (self.migration,)).fetchone()
        if row is None:
            return State.not_started, None
        return State(row[0]), State(row[1]) if row[1] else None

    def state(self) -> State:
        """The stored state; ``not_started`` when there is no row (never started, finished or aborted)."""
        return self._row()[0]

    def transition(self, event: Event) -> State:
        """Compare-and-set: the new state, written only if the stored one still allows ``event``."""
        current, switch_from = self._row()
        try:
            new = after(event, current, switch_from)
        except IllegalTransition:
            raise PgbatonError(f"migration {self.migration} is {current.value}: {event.value} is not possible "
                               "now (another command changed it meanwhile?)") from None
        allowed = [s.value for s in TRANSITIONS[event][0]]
        begins = event in (Event.begin_switchover, Event.begin_switchback)
        cur = self.conn.execute(
            sql.SQL("UPDATE {} SET state = %s, switch_from = %s, updated_at = now() "
                    "WHERE name = %s AND state = ANY(%s)").format(self._t("migration")),
            (new.value, current.value if begins else None, self.migration, allowed))
        if cur.rowcount != 1:
            raise PgbatonError(f"migration {self.migration}: its state changed meanwhile (now "
                               f"{self.state().value}); {event.value} not applied")
        return new

    def lock(self, *, wait: float = 0.0) -> bool:
        """Take this migration's lock for the session (until it closes): one command at a time.

        ``wait``: how many seconds to keep trying; False when another session holds it.
        """
        import time

        deadline = time.monotonic() + wait
        while True:
            row = self.conn.execute("SELECT pg_try_advisory_lock(hashtext('pgbaton_migrate'), hashtext(%s))",
                                    (self.migration,)).fetchone()
            if row and row[0]:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def hold(self, command: str, wait: float = 60.0) -> None:
        """The lock for the command's session, or a clear refusal when another command keeps it."""
        if not self.lock(wait=wait):
            raise PgbatonError(f"migration {self.migration}: another pgbaton command is working on it (a "
                               f"`migrate run` pass, a switch, start, abort or finish) and did not let go within "
                               f"{wait:.0f} s; retry `pgbaton migrate {command} {self.migration}` later")

    def unlock(self) -> None:
        self.conn.execute("SELECT pg_advisory_unlock(hashtext('pgbaton_migrate'), hashtext(%s))", (self.migration,))

    def switch_steps(self) -> dict[str, tuple[str, Any]]:
        """Switchover steps recorded for this migration: action -> (started | done, detail)."""
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{self.schema}.switchover_step",)).fetchone()
        if not (row and row[0]):  # no catalog, or one made before switchovers were recorded
            return {}
        rows = self.conn.execute(sql.SQL("SELECT action, state, detail FROM {} WHERE migration = %s")
                                 .format(self._t("switchover_step")), (self.migration,)).fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def record_step(self, action: str, state: str, detail: Any = None) -> None:
        self.record_steps([(action, state, detail)])

    def record_steps(self, steps: list[tuple[str, str, Any]]) -> None:
        """Several step records (of different actions) in one statement: together or none."""
        values = sql.SQL(", ").join(sql.SQL("(%s, %s, %s, %s)") for _ in steps)
        params: list[Any] = []
        for action, state, detail in steps:
            params += [self.migration, action, state, Jsonb(detail) if detail is not None else None]
        self.conn.execute(sql.SQL("INSERT INTO {} (migration, action, state, detail) VALUES {} "
                                  "ON CONFLICT (migration, action) DO UPDATE SET state = EXCLUDED.state, "
                                  "detail = coalesce(EXCLUDED.detail, {}.detail), updated_at = now()")
                          .format(self._t("switchover_step"), values, sql.Identifier("switchover_step")), params)

    def clear_steps(self) -> None:
        self.conn.execute(sql.SQL("DELETE FROM {} WHERE migration = %s").format(self._t("switchover_step")),
                          (self.migration,))

    # -- the switch history (one row per switch; see catalog.sql) --------------------------------
    def begin_switch(self, direction: str) -> int:
        """A row for a switch beginning now (outcome ``running``); its id."""
        row = self.conn.execute(sql.SQL("INSERT INTO {} (migration, direction) VALUES (%s, %s) RETURNING id")
                                .format(self._t("switch_history")), (self.migration, direction)).fetchone()
        assert row is not None
        return int(row[0])

    def open_switch(self, direction: str) -> int:
        """The row of the switch under way in ``direction`` (an interrupted one a rerun takes up),
        made now if a pgbaton from before the history began it."""
        row = self.conn.execute(sql.SQL("SELECT max(id) FROM {} WHERE migration = %s AND direction = %s "
                                        "AND outcome = 'running'").format(self._t("switch_history")),
                                (self.migration, direction)).fetchone()
        return int(row[0]) if row and row[0] is not None else self.begin_switch(direction)

    def end_switch(self, switch_id: int, outcome: str, *, paused_seconds: float | None = None,
                   databases: dict[str, Any] | None = None, reason: str | None = None) -> None:
        """Close a switch's row: its outcome, the pause, each database's step times (merged with
        those a run before an interruption recorded)."""
        self.conn.execute(sql.SQL("UPDATE {} SET outcome = %s, ended_at = clock_timestamp(), "
                                  "paused_seconds = coalesce(%s, paused_seconds), reason = %s, "
                                  "databases = databases || %s WHERE migration = %s AND id = %s")
                          .format(self._t("switch_history")),
                          (outcome, paused_seconds, reason, Jsonb(databases or {}), self.migration, switch_id))

    def note_switch(self, switch_id: int, *, paused_seconds: float | None = None,
                    databases: dict[str, Any] | None = None) -> None:
        """What a switch under way has measured so far (kept if it is interrupted)."""
        self.conn.execute(sql.SQL("UPDATE {} SET paused_seconds = coalesce(%s, paused_seconds), "
                                  "databases = databases || %s WHERE migration = %s AND id = %s")
                          .format(self._t("switch_history")),
                          (paused_seconds, Jsonb(databases or {}), self.migration, switch_id))

    def cancelled_switch(self, direction: str, reason: str) -> None:
        """A switch refused before its pause: nothing was changed."""
        self.conn.execute(sql.SQL("INSERT INTO {} (migration, direction, ended_at, outcome, reason) "
                                  "VALUES (%s, %s, clock_timestamp(), 'cancelled', %s)")
                          .format(self._t("switch_history")), (self.migration, direction, reason))

    def switch_history(self, limit: int = 20) -> list[dict[str, Any]]:
        """The last ``limit`` switches, oldest first."""
        row = self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"{self.schema}.switch_history",)).fetchone()
        if not (row and row[0]):
            return []
        rows = self.conn.execute(sql.SQL(
            "SELECT id, direction, started_at, ended_at, paused_seconds, outcome, reason, databases FROM {} "
            "WHERE migration = %s ORDER BY id DESC LIMIT %s").format(self._t("switch_history")),
            (self.migration, limit)).fetchall()
        return [{"id": r[0], "direction": r[1], "started_at": r[2].isoformat(),
                 "ended_at": r[3].isoformat() if r[3] else None, "paused_seconds": r[4], "outcome": r[5],
                 "reason": r[6], "databases": r[7]} for r in reversed(rows)]

    def record_identity(self, dbname: str, table: str, previous: str) -> None:
        self.conn.execute(sql.SQL("INSERT INTO {} VALUES (%s, %s, %s, %s) ON CONFLICT DO NOTHING")
                          .format(self._t("replica_identity")), (self.migration, dbname, table, previous))

    def identities(self, dbname: str) -> list[tuple[str, str]]:
        if not self.exists():
            return []
        rows = self.conn.execute(sql.SQL("SELECT table_name, previous FROM {} WHERE migration = %s AND dbname = %s")
                                 .format(self._t("replica_identity")), (self.migration, dbname)).fetchall()
        return [(r[0], r[1]) for r in rows]

    def forget(self, event: Event = Event.finish) -> None:
        """Remove this migration (``event``: abort or finish, a compare-and-set as every transition);
        drop the whole catalog schema when it was the last one."""
        if not self.exists():
            return
        allowed = [s.value for s in TRANSITIONS[event][0]]
        with self.conn.transaction():
            self.conn.execute(sql.SQL("DELETE FROM {} WHERE migration = %s").format(self._t("replica_identity")),
                              (self.migration,))
            cur = self.conn.execute(sql.SQL("DELETE FROM {} WHERE name = %s AND state = ANY(%s)")
                                    .format(self._t("migration")), (self.migration, allowed))
            if cur.rowcount == 0 and self.state() is not State.not_started:
                raise PgbatonError(f"migration {self.migration} is {self.state().value}: "
                                   f"{event.value} is not possible")
            row = self.conn.execute(sql.SQL("SELECT count(*) FROM {}").format(self._t("migration"))).fetchone()
            if row and row[0] == 0:
                self.conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(self.schema)))
