"""The migration's states, transitions and command admissions, pure (no servers)."""

from __future__ import annotations

import itertools
import random

import pytest

from pgbaton.migrate.lifecycle import (
    TRANSITIONS,
    Command,
    Event,
    IllegalTransition,
    State,
    admit,
    after,
)

S, C, E = State, Command, Event


def test_every_command_in_every_state_acts_or_says_what_to_do() -> None:
    for command, state in itertools.product(Command, State):
        a = admit(command, state, "m1")
        if not a.act:
            assert a.message, (command, state)
            assert a.done or "`" in a.message, (command, state, a.message)  # names a command to run


def test_the_issue_cases() -> None:
    # abort after a switchback is refused and says to finish instead
    a = admit(C.abort, S.switched_back, "m1")
    assert not a.act and "migrate finish m1" in a.message
    # status after finish (no catalog row): refused, so the CLI exits 1
    a = admit(C.status, S.not_started, "m1")
    assert not a.act and "finished or aborted" in a.message
    # a half-done switch blocks everything but its own rerun, status and run
    for state, own in ((S.switching_over, C.switchover), (S.switching_back, C.switchback)):
        assert admit(own, state, "m1").act
        for command in (C.start, C.abort, C.finish, C.check, C.sync_sequences):
            a = admit(command, state, "m1")
            assert not a.act and f"migrate {own.value} m1" in a.message
    assert admit(C.switchover, S.switched, "m1").done
    assert admit(C.switchback, S.switched_back, "m1").done
    assert admit(C.switchover, S.switched_back, "m1").act  # switch over again


def test_transitions() -> None:
    assert after(E.set_up, S.started) is S.streaming
    assert after(E.begin_switchover, S.switched_back) is S.switching_over
    assert after(E.undo_switchover, S.switching_over, S.switched_back) is S.switched_back
    assert after(E.undo_switchover, S.switching_over, S.streaming) is S.streaming
    assert after(E.undo_switchback, S.switching_back, S.switched) is S.switched
    for bad_event, state in ((E.set_up, S.switched_back), (E.set_up, S.switched), (E.abort, S.switched_back),
                             (E.begin_switchback, S.streaming), (E.switched_over, S.streaming)):
        with pytest.raises(IllegalTransition):
            after(bad_event, state)


def test_random_walks_stay_in_legal_states() -> None:
    """Random events: only those the table allows change the state; each lands in a known state and
    every state stays reachable to not_started (the migration can always be ended)."""
    rng = random.Random(7)
    for _ in range(200):
        state, switch_from = S.not_started, None
        for _ in range(30):
            event = rng.choice(list(Event))
            try:
                new = after(event, state, switch_from)
            except IllegalTransition:
                assert state not in TRANSITIONS[event][0]
                continue
            if event in (E.begin_switchover, E.begin_switchback):
                switch_from = state
            elif event in (E.undo_switchover, E.undo_switchback, E.switched_over, E.switched_back):
                switch_from = None
            if event is E.abort and state is S.not_started:
                new = S.not_started
            state = new
            assert state in State
        # from anywhere: a rerun of the switch settles it, then finish ends it
        if state is S.switching_over:
            state = after(E.undo_switchover, state, switch_from)
        if state is S.switching_back:
            state = after(E.undo_switchback, state, switch_from)
        assert after(E.finish, state) is S.not_started
