"""``switchover.table_sync``, pure: what the new side lacks before a stream may be retired."""

from __future__ import annotations

from pgbaton.migrate.switchover import table_sync

PUB = {"public.a", "public.b", "public.new"}


def test_a_new_table_present_but_not_subscribed_is_to_be_added() -> None:
    s = table_sync(PUB, {"public.a": "r", "public.b": "s"}, PUB, set(), set())
    assert s.refresh == ("public.new",) and not s.complete and "not subscribed: public.new" in s.describe()


def test_copying_and_absent_tables_are_not_complete() -> None:
    s = table_sync(PUB, {"public.a": "r", "public.b": "d", "public.new": "i"}, PUB, set(), set())
    assert s.waiting == ("public.b", "public.new") and not s.complete
    s = table_sync(PUB, {"public.a": "r", "public.b": "r"}, {"public.a", "public.b"}, set(), set())
    assert s.absent == ("public.new",) and s.refresh == () and not s.complete


def test_all_synced_is_complete_and_queue_entries_alone_do_not_block() -> None:
    ready = {"public.a": "r", "public.b": "r", "public.new": "s"}
    assert table_sync(PUB, ready, PUB, {("n1", 1)}, {("n1", 1)}).complete
    s = table_sync(PUB, ready, PUB, {("n1", 1), ("n1", 2)}, {("n1", 1)})
    assert s.complete and s.ddl_behind == 1
    # a table no longer published (dropped) but still in the subscription does not count
    assert table_sync({"public.a"}, {"public.a": "r", "public.gone": "d"}, {"public.a"}, set(), set()).complete
