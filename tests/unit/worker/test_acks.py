"""A consuming thread's acks of a turn (the worker's and the operator's): a run from the
oldest open delivery as one ``multiple`` ack, never sweeping up a delivery still handled or
rejected."""

from __future__ import annotations

from asynctask_worker.acks import AckBook, Acks


def book(*tags: int) -> AckBook:
    b = AckBook()
    for tag in tags:
        b.delivered(tag)
    return b


def test_a_run_from_the_oldest_open_delivery_is_one_multiple_ack() -> None:
    b = book(1, 2, 3, 4, 5)
    acks = b.plan([3, 1, 2])  # settled out of order within the turn
    assert acks == Acks(3, [])
    assert acks.frames == 1
    assert len(b) == 2  # 4 and 5 are still being handled


def test_a_delivery_still_handled_ends_the_run_and_later_acks_go_alone() -> None:
    b = book(1, 2, 3, 4, 5, 6)
    acks = b.plan([1, 2, 4, 6])
    assert acks == Acks(2, [4, 6])  # 3 and 5 must not be acked by `multiple`
    # once 3 is acked, it is the oldest open one: alone (5 is still open behind it)
    assert b.plan([3]) == Acks(None, [3])
    assert b.plan([5]) == Acks(None, [5])
    assert len(b) == 0


def test_a_single_ack_at_the_front_is_not_sent_as_multiple() -> None:
    b = book(7, 8)
    assert b.plan([7]) == Acks(None, [7])
    assert b.plan([8]) == Acks(None, [8])


def test_a_rejected_delivery_is_never_swept_up_by_a_later_multiple_ack() -> None:
    b = book(1, 2, 3)
    assert b.settled(2)  # rejected (dead-lettered) on its own
    assert b.plan([1, 3]) == Acks(3, [])  # 2 is no longer open at the broker either
    assert len(b) == 0


def test_tags_not_open_are_never_acked() -> None:
    """Acking a tag twice, or one of an old channel, would close the consuming channel."""
    b = book(1, 2)
    assert b.plan([1, 1]) == Acks(None, [1])
    assert b.plan([1, 99]) == Acks()
    assert not b.settled(1)
    b.reset()  # a new channel: its tags start afresh
    assert b.plan([2]) == Acks()
    assert Acks().frames == 0
