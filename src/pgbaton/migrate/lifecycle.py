"""The states of a migration, the transitions between them, and what each command may do in each.

Pure: the catalog (``catalog.Catalog.transition``) applies a transition as a compare-and-set
on the stored state, so two commands, or a command and ``migrate run``, can never race a
migration into a state this table does not allow.

    not_started -> started -> streaming -> switching_over -> switched -> switching_back -> switched_back
                                   ^              |                            |                 |
                                   +-- rollback --+                            +--- rollback ----+ (to switched)
    switched_back -> switching_over (switch again; a rollback returns to switched_back)
    abort: started | streaming -> not_started;  finish: any settled state -> not_started

A switch records the state it began in (``switch_from``): its rollback returns there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class State(StrEnum):
    not_started = "not_started"        # no catalog row: never started, or finished / aborted
    started = "started"                # `start` began; not every database set up yet
    streaming = "streaming"            # forward stream set up; clients on the source
    switching_over = "switching_over"  # a switchover is under way (or was interrupted)
    switched = "switched"              # clients on the target; reverse stream to the source
    switching_back = "switching_back"  # a switchback is under way (or was interrupted)
    switched_back = "switched_back"    # clients on the source again; forward stream to the target


class Command(StrEnum):
    check = "check"
    start = "start"
    run = "run"
    status = "status"
    sync_sequences = "sync-sequences"
    switchover = "switchover"
    switchback = "switchback"
    abort = "abort"
    finish = "finish"


class Event(StrEnum):
    set_up = "set_up"                          # `start` completed every database
    begin_switchover = "begin_switchover"
    switched_over = "switched_over"
    undo_switchover = "undo_switchover"
    begin_switchback = "begin_switchback"
    switched_back = "switched_back"
    undo_switchback = "undo_switchback"
    abort = "abort"
    finish = "finish"


S = State
SETTLED = frozenset({S.started, S.streaming, S.switched, S.switched_back})
ROLLBACK = object()  # marker: back to the state the switch began in

# event -> (states it may happen in, the state after it, or ROLLBACK)
TRANSITIONS: dict[Event, tuple[frozenset[State], State | object]] = {
    Event.set_up: (frozenset({S.started, S.streaming}), S.streaming),
    Event.begin_switchover: (frozenset({S.streaming, S.switched_back}), S.switching_over),
    Event.switched_over: (frozenset({S.switching_over}), S.switched),
    Event.undo_switchover: (frozenset({S.switching_over}), ROLLBACK),
    Event.begin_switchback: (frozenset({S.switched}), S.switching_back),
    Event.switched_back: (frozenset({S.switching_back}), S.switched_back),
    Event.undo_switchback: (frozenset({S.switching_back}), ROLLBACK),
    Event.abort: (frozenset({S.not_started, S.started, S.streaming}), S.not_started),
    Event.finish: (SETTLED | {S.not_started}, S.not_started),
}


class IllegalTransition(Exception):
    pass


def after(event: Event, state: State, switch_from: State | None = None) -> State:
    """The state ``event`` leads to from ``state``; raises when the table does not allow it."""
    allowed, to = TRANSITIONS[event]
    if state not in allowed:
        raise IllegalTransition(f"{event.value} is not allowed in state {state.value}")
    if to is ROLLBACK:
        if switch_from is None:
            return S.streaming if event is Event.undo_switchover else S.switched
        return switch_from
    assert isinstance(to, State)
    return to


@dataclass(frozen=True)
class Admission:
    """Whether a command acts in a state; when not, the message says what to do instead."""

    act: bool
    message: str = ""
    done: bool = False  # nothing to do: what the command is for holds already (success)


def _interrupted(name: str, command: str) -> str:
    return (f"a {command} of migration {name} was interrupted: rerun `pgbaton migrate {command} {name}` "
            "to finish or roll it back first")


def admit(command: Command, state: State, name: str) -> Admission:
    """May ``command`` act on migration ``name`` in ``state``?  Every pair has an answer."""
    C = Command
    if state is S.switching_over and command not in (C.switchover, C.status, C.run):
        return Admission(False, _interrupted(name, "switchover"))
    if state is S.switching_back and command not in (C.switchback, C.status, C.run):
        return Admission(False, _interrupted(name, "switchback"))
    not_started = f"migration {name} is not started: run `pgbaton migrate start {name}` first"
    on_target = (f"migration {name} is switched over: clients use the target; `migrate run {name}` keeps the "
                 f"reverse stream healthy, `migrate switchback {name}` returns, `migrate finish {name}` ends it")
    back = (f"migration {name} was switched back: clients use the source and the forward stream runs again; "
            f"`migrate run {name}` keeps it healthy, `migrate switchover {name}` switches again, "
            f"`migrate finish {name}` ends it")
    match command:
        case C.check:
            if state in (S.not_started, S.started, S.streaming):
                return Admission(True)
            return Admission(False, (on_target if state is S.switched else back)
                             + "; the preflight is for a migration before its switchover "
                             f"(see `migrate status {name}`)")
        case C.start:
            if state in (S.not_started, S.started, S.streaming):
                return Admission(True)
            return Admission(False, on_target if state is S.switched else back)
        case C.run | C.status:
            if state is S.not_started:
                if command is C.status:
                    return Admission(False, f"migration {name} is not started, or it was finished or aborted: "
                                            f"nothing of it is left to show; `pgbaton migrate start {name}` begins it")
                return Admission(False, not_started)
            return Admission(True)
        case C.sync_sequences:
            if state is S.not_started:
                return Admission(False, not_started)
            if state is S.switched:
                return Admission(False, f"migration {name} is switched over: the target's sequences are the ones "
                                    f"in use (the switchover moved them; `migrate switchback {name}` moves them back)")
            return Admission(True)
        case C.switchover:
            if state is S.not_started:
                return Admission(False, not_started)
            if state is S.started:
                return Admission(False, f"migration {name} is not streaming yet: rerun `pgbaton migrate start "
                                        f"{name}` until every database is set up")
            if state is S.switched:
                return Admission(False, f"already done ({state.value})", done=True)
            return Admission(True)
        case C.switchback:
            if state in (S.switched, S.switching_back):
                return Admission(True)
            if state is S.switched_back:
                return Admission(False, f"already done ({state.value})", done=True)
            if state is S.not_started:
                return Admission(False, not_started)
            return Admission(False, f"migration {name} is {state.value}, not switched over: nothing to switch back "
                                    f"(`migrate status {name}` shows where it stands)")
        case C.abort:
            if state in (S.not_started, S.started, S.streaming):
                return Admission(True)
            if state is S.switched:
                return Admission(False, f"migration {name}: a switchover was done; abort would drop the databases "
                                        f"clients now use: `migrate switchback {name}` first, or `migrate finish "
                                        f"{name}` to end the migration keeping both sides")
            return Admission(False, f"migration {name} was switched over and back: the target holds what clients "
                                    f"wrote while it was the primary, so abort does not drop it; `migrate finish "
                                    f"{name}` ends the migration keeping both sides (drop the target databases "
                                    "yourself afterwards if you want them gone)")
        case C.finish:
            return Admission(True)
    raise AssertionError(f"no rule for {command} in {state}")  # pragma: no cover
