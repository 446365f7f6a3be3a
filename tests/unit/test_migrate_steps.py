"""Next steps of `migrate start` per database: resumable after a crash at any point."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from pgbaton.migrate.model import DbProgress, DbState, Step
from pgbaton.migrate.names import object_name
from pgbaton.migrate.steps import db_state, next_steps

NOTHING = DbProgress("app", target_db_exists=False, created_db=False, schema_copied=False, tables_need_identity=(),
                     publication_exists=False, slot_exists=False, subscription_exists=False,
                     subscription_enabled=False)
DONE = replace(NOTHING, target_db_exists=True, created_db=True, schema_copied=True, publication_exists=True,
               slot_exists=True, subscription_exists=True, subscription_enabled=True, tables_total=3,
               tables_synced=3, worker_running=True)


def test_fresh_database_gets_every_step_in_order() -> None:
    assert next_steps(NOTHING) == [Step.create_target_db, Step.copy_schema, Step.create_publication,
                                   Step.create_slot, Step.create_subscription]


def test_done_is_a_no_op() -> None:
    assert next_steps(DONE) == []
    assert db_state(DONE) is DbState.streaming


def test_replica_identity_comes_before_the_schema_copy() -> None:
    steps = next_steps(replace(NOTHING, tables_need_identity=("public.events",)))
    assert steps.index(Step.set_replica_identity) < steps.index(Step.copy_schema)


def test_half_copied_schema_in_our_database_is_redone_from_scratch() -> None:
    crashed = replace(NOTHING, target_db_exists=True, created_db=True)
    assert next_steps(crashed)[:3] == [Step.drop_partial_target_db, Step.create_target_db, Step.copy_schema]


def test_existing_empty_database_is_used_not_dropped() -> None:
    theirs = replace(NOTHING, target_db_exists=True)
    assert next_steps(theirs)[0] == Step.copy_schema


@pytest.mark.parametrize(
    ("progress", "expected"),
    [
        (replace(DONE, publication_exists=False), [Step.create_publication]),
        (replace(DONE, subscription_exists=False, subscription_enabled=False), [Step.create_subscription]),
        (replace(DONE, slot_exists=False, subscription_exists=False, subscription_enabled=False),
         [Step.create_slot, Step.create_subscription]),
        (replace(DONE, subscription_enabled=False), [Step.enable_subscription]),
    ],
)
def test_missing_pieces_are_recreated(progress: DbProgress, expected: list[Step]) -> None:
    assert next_steps(progress) == expected


def test_states() -> None:
    assert db_state(NOTHING) is DbState.not_started
    assert db_state(replace(NOTHING, target_db_exists=True, created_db=True)) is DbState.preparing
    assert db_state(replace(DONE, tables_synced=1)) is DbState.copying
    assert db_state(replace(DONE, subscription_enabled=False)) is DbState.stopped
    assert db_state(replace(DONE, worker_running=False)) is DbState.stopped


def test_object_names_are_prefixed_valid_slot_names_and_distinct() -> None:
    a, b = object_name("m1", "Shop-EU"), object_name("m1", "shop_eu")
    assert a.startswith("pgbaton_") and a != b
    assert re.fullmatch(r"[a-z0-9_]+", a)
    assert len(object_name("m" * 40, "x" * 63)) <= 63
    assert object_name("m1", "app", "rev") != object_name("m1", "app")


def test_lost_subscription_after_the_copy_resumes_from_the_slot_without_copying_again() -> None:
    lost = replace(DONE, subscription_exists=False, subscription_enabled=False, subscribed=True)
    assert next_steps(lost) == [Step.reattach_subscription]


def test_lost_slot_after_the_copy_is_refused_not_silently_recopied() -> None:
    lost = replace(DONE, subscription_exists=False, subscription_enabled=False, slot_exists=False, subscribed=True)
    assert next_steps(lost) == [Step.refuse_lost_slot]
