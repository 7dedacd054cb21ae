"""Which publishes a confirm from RabbitMQ settles (pure: no pika, no threads).

A channel in confirm mode numbers its publishes 1, 2, 3, ... (the *delivery tags*) and
the broker answers each with ``basic.ack`` (stored) or ``basic.nack`` (not stored). One
answer may cover many: with ``multiple`` set it settles every publish of the channel up
to and including its tag that is still open. The status publisher keeps several
publishes in flight on its channel and settles them from these answers
(:mod:`asynctask_worker._runtime.publishing`); a new channel starts the numbering afresh,
and what the old one left unanswered is published again (at-least-once).
"""

from __future__ import annotations

from typing import Generic, TypeVar

T = TypeVar("T")


class InFlight(Generic[T]):
    """The publishes of one channel awaiting their confirm, oldest first."""

    def __init__(self) -> None:
        self._next = 1
        self._open: dict[int, T] = {}  # insertion order is tag order

    def __len__(self) -> int:
        return len(self._open)

    def published(self, item: T) -> int:
        """One more publish on the channel: its delivery tag."""
        tag = self._next
        self._next += 1
        self._open[tag] = item
        return tag

    def settle(self, tag: int, multiple: bool) -> list[T]:
        """The publishes one answer settles, oldest first, no longer open: ``tag`` alone,
        or with ``multiple`` every open one up to it. A tag not open (answered already)
        settles nothing."""
        if not multiple:
            item = self._open.pop(tag, None)
            return [] if item is None else [item]
        tags = []
        for open_tag in self._open:  # in tag order: stop at the first one past ``tag``
            if open_tag > tag:
                break
            tags.append(open_tag)
        return [self._open.pop(t) for t in tags]

    def reset(self) -> list[T]:
        """The channel is gone: every publish it left unanswered, oldest first (to be
        published again on the next channel, whose tags start at 1)."""
        items = list(self._open.values())
        self._open.clear()
        self._next = 1
        return items
