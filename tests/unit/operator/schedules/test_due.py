"""The schedules' due times (pure): one a schedule, the earliest first, ties in order."""

from __future__ import annotations

from asynctask_operator.schedules.due import DueTimes


def test_the_earliest_due_key_pops_once_it_is_due_and_a_new_time_replaces_the_old() -> None:
    due: DueTimes[str] = DueTimes()
    assert due.set("a", 10.0) is True  # the earliest
    assert due.set("b", 5.0) is True
    assert due.set("c", 7.0) is False
    assert due.set("b", 12.0) is False  # moved: its old item at 5.0 is stale
    assert due.earliest() == 7.0
    assert due.pop(6.9) is None  # nothing due yet
    assert due.pop(100.0) == "c"
    assert due.pop(100.0) == "a"
    assert due.pop(100.0) == "b"
    assert due.pop(100.0) is None and len(due) == 0


def test_keys_due_at_the_same_time_pop_in_the_order_they_were_set_and_discarded_never() -> None:
    due: DueTimes[int] = DueTimes()
    for key in (3, 1, 2, 4):
        due.set(key, 1.0)
    due.discard(2)
    assert [due.pop(1.0) for _ in range(4)] == [3, 1, 4, None]
    assert due.get(2) is None


def test_stale_items_do_not_pile_up() -> None:
    due: DueTimes[int] = DueTimes()
    for at in range(1000):
        due.set(0, float(at))  # one key moved 1,000 times
    assert len(due._heap) <= 4 * 64  # rebuilt as the stale items grew
    assert due.pop(1e9) == 0 and due.earliest() is None
