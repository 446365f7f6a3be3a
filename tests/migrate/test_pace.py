"""How many databases copy at once (``pace``): pure, no servers."""

from __future__ import annotations

from pgbaton.migrate.pace import Capacity, Limit, copies_at_once, needed, to_release


def cap(slots: int, senders: int = 100, workers: int = 100, sync: int = 2, used: int = 0) -> Capacity:
    return Capacity((Limit("source.max_replication_slots", slots, used), Limit("source.max_wal_senders", senders, 0),
                     Limit("target.max_logical_replication_workers", workers, 0)), sync)


def test_every_stream_is_counted_then_the_copies_fit_in_what_is_left() -> None:
    assert copies_at_once(cap(slots=10 + 2 * 3), 10) == 3          # 10 streams, 3 copies of 2 tables each
    assert copies_at_once(cap(slots=10 + 2 * 3 + 1), 10) == 3      # half a copy does not count
    assert copies_at_once(cap(slots=100), 10) == 10                  # never more than the databases
    assert copies_at_once(cap(slots=100, workers=10 + 4), 10) == 2   # the tightest limit decides
    assert copies_at_once(cap(slots=16, used=4), 10) == 1            # what others use is not ours


def test_at_least_one_copy_runs_whatever_the_limits() -> None:
    assert copies_at_once(cap(slots=10), 10) == 1
    assert copies_at_once(cap(slots=3), 10) == 1
    assert copies_at_once(Capacity((), 0), 4) == 4                   # no limit known, no sync workers


def test_release_fills_the_room_left_by_the_copies_running() -> None:
    assert to_release(allowed=3, copying=1, queued=5) == 2
    assert to_release(allowed=3, copying=3, queued=5) == 0
    assert to_release(allowed=3, copying=5, queued=5) == 0           # more running than allowed: none
    assert to_release(allowed=3, copying=0, queued=1) == 1


def test_needed_least_and_best() -> None:
    assert needed(10, 4) == (14, 50)
    assert needed(1, 0) == (2, 2)
