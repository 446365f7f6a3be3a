"""Which step ``start`` takes next for one database: pure, so a rerun resumes where it stopped."""

from __future__ import annotations

from pgbaton.migrate.model import DbProgress, DbState, Step


def next_steps(p: DbProgress) -> list[Step]:
    """All steps still missing, in order; empty when the database is fully set up.

    A target database pgbaton created but whose schema copy did not finish is dropped
    and created again, so a crash during the copy never leaves half a schema behind.
    """
    steps: list[Step] = []
    # before the schema copy, so that pg_dump carries the replica identity to the target too
    if p.tables_need_identity:
        steps.append(Step.set_replica_identity)
    schema_done = p.schema_copied and p.target_db_exists
    if not schema_done:
        if p.target_db_exists and p.created_db:
            steps.append(Step.drop_partial_target_db)
        if not p.target_db_exists or p.created_db:
            steps.append(Step.create_target_db)
        steps.append(Step.copy_schema)
    if not p.publication_exists:
        steps.append(Step.create_publication)
    if not p.slot_exists and not p.subscription_exists and not p.subscribed:
        steps.append(Step.create_slot)
    if not p.subscription_exists and p.subscribed and not p.queued:
        # the rows were copied once: copying again would clash; only the slot's stream can resume
        steps.append(Step.reattach_subscription if p.slot_exists else Step.refuse_lost_slot)
    elif not p.subscription_exists:
        steps.append(Step.create_subscription)
    elif not p.subscription_enabled:
        steps.append(Step.enable_subscription)
    return steps


def db_state(p: DbProgress) -> DbState:
    """The state ``status`` shows for one database."""
    if not p.subscription_exists:
        return DbState.preparing if (p.target_db_exists and p.created_db) or p.publication_exists \
            else DbState.not_started
    if not p.subscription_enabled:
        return DbState.queued if p.queued else DbState.stopped
    if p.tables_total and p.tables_synced < p.tables_total:
        return DbState.copying
    return DbState.streaming if p.worker_running else DbState.stopped
