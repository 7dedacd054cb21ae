"""Which publishes a broker's confirm settles (``_runtime/confirms.py``)."""

from __future__ import annotations

from asynctask_worker._runtime.confirms import InFlight


def published(*items: str) -> InFlight[str]:
    book: InFlight[str] = InFlight()
    for item in items:
        book.published(item)
    return book


def test_tags_count_from_one_per_channel() -> None:
    book: InFlight[str] = InFlight()
    assert [book.published(x) for x in "abc"] == [1, 2, 3]
    assert len(book) == 3


def test_a_single_confirm_settles_its_publish_only() -> None:
    book = published("a", "b", "c")
    assert book.settle(2, multiple=False) == ["b"]
    assert len(book) == 2
    assert book.settle(2, multiple=False) == []  # answered already: nothing


def test_a_multiple_confirm_settles_every_open_publish_up_to_its_tag() -> None:
    book = published("a", "b", "c", "d", "e")
    assert book.settle(2, multiple=False) == ["b"]
    assert book.settle(4, multiple=True) == ["a", "c", "d"]  # b was settled already
    assert book.settle(4, multiple=True) == []
    assert book.settle(5, multiple=True) == ["e"]
    assert len(book) == 0


def test_a_multiple_confirm_below_every_open_tag_settles_nothing() -> None:
    book = published("a", "b", "c")
    assert book.settle(1, multiple=False) == ["a"]
    assert book.settle(1, multiple=True) == []
    assert len(book) == 2


def test_a_reset_hands_back_the_unconfirmed_in_order_and_restarts_the_tags() -> None:
    book = published("a", "b", "c", "d")
    book.settle(2, multiple=False)
    assert book.reset() == ["a", "c", "d"]
    assert len(book) == 0
    assert book.published("x") == 1
