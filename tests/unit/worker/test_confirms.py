"""Which publishes RabbitMQ's answers settle on a channel with many in flight: a
``multiple`` answer settles every open one up to its tag, a single one only its own (even
out of order), an answer twice or for an unknown tag settles nothing, and a lost channel
hands back every open publish, oldest first."""

from __future__ import annotations

from asynctask_worker.confirms import ConfirmBook


def book(*items: str) -> ConfirmBook[str]:
    b: ConfirmBook[str] = ConfirmBook()
    for item in items:
        b.sent(item)
    return b


def test_tags_number_the_publishes_of_a_channel_from_one() -> None:
    b: ConfirmBook[str] = ConfirmBook()
    assert [b.sent(x) for x in "abc"] == [1, 2, 3]
    assert len(b) == 3


def test_a_multiple_answer_settles_every_open_publish_up_to_its_tag() -> None:
    b = book("a", "b", "c", "d", "e")
    assert b.settle(3, multiple=True) == ["a", "b", "c"]
    assert len(b) == 2
    assert b.settle(3, multiple=True) == []  # answered already: nothing twice
    assert b.settle(5, multiple=True) == ["d", "e"]
    assert len(b) == 0


def test_a_single_answer_settles_only_its_own_publish_even_out_of_order() -> None:
    b = book("a", "b", "c", "d")
    assert b.settle(3, multiple=False) == ["c"]
    assert b.settle(3, multiple=False) == []
    assert b.settle(9, multiple=False) == []  # never sent on this channel
    # a later multiple answer skips what was settled alone
    assert b.settle(4, multiple=True) == ["a", "b", "d"]
    assert len(b) == 0


def test_the_oldest_settled_alone_leaves_no_trace_behind() -> None:
    b = book("a", "b", "c")
    assert b.settle(1, multiple=False) == ["a"]
    assert b.settle(2, multiple=False) == ["b"]
    assert b.settle(2, multiple=True) == []
    assert b.settle(3, multiple=True) == ["c"]


def test_tag_zero_with_multiple_settles_everything_open() -> None:
    b = book("a", "b", "c")
    b.settle(2, multiple=False)
    assert b.settle(0, multiple=True) == ["a", "c"]
    assert len(b) == 0


def test_a_lost_channel_hands_back_what_is_open_and_numbers_from_one_again() -> None:
    b = book("a", "b", "c", "d")
    b.settle(1, multiple=True)
    b.settle(3, multiple=False)
    assert b.drain() == ["b", "d"]
    assert len(b) == 0
    assert b.settle(4, multiple=True) == []  # an answer of the old channel: nothing
    assert b.sent("e") == 1
    assert b.settle(1, multiple=False) == ["e"]


def test_the_most_open_at_once_is_kept() -> None:
    b = book("a", "b", "c")
    b.settle(2, multiple=True)
    b.sent("d")
    assert b.most_open == 3
    b.drain()
    assert b.most_open == 3


def test_a_multiple_answer_below_every_open_tag_settles_nothing() -> None:
    b = book("a", "b", "c")
    assert b.settle(1, multiple=False) == ["a"]
    assert b.settle(1, multiple=True) == []
    assert len(b) == 2
