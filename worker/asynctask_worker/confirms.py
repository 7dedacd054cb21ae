"""Which publishes a confirm from RabbitMQ settles, on a channel with several in flight
(pure: no pika, no threads).

A channel in confirm mode numbers its publishes 1, 2, 3, ... (the delivery tag) and the
broker answers each with a ``basic.ack`` (the message is safe: in a quorum queue's log on a
majority) or a ``basic.nack`` (it is not, and never will be). One frame may answer many:
with ``multiple`` set it settles every publish of the channel up to its tag that is still
open (a tag of 0 with ``multiple``: all of them). Answers to different queues may come out
of order, so a single answer may settle a publish in the middle.

A lost connection (a new channel numbers from 1 again) leaves the open publishes
unanswered: :meth:`ConfirmBook.drain` hands them back, to be sent again (at-least-once).
The worker's status publisher and the operator's publishers share this book.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class ConfirmBook(Generic[T]):
    """The publishes of one channel not yet answered, each under its delivery tag."""

    def __init__(self) -> None:
        self._open: dict[int, T] = {}
        self._order: deque[int] = deque()  # tags in the order sent; settled ones pruned lazily
        self._last = 0  # the tag of the last publish on this channel
        self.most_open = 0  # the most publishes open at once (since the book was made)

    def __len__(self) -> int:
        return len(self._open)

    def sent(self, item: T) -> int:
        """A publish went out on the channel: its delivery tag (the next number)."""
        self._last += 1
        self._open[self._last] = item
        self._order.append(self._last)
        self.most_open = max(self.most_open, len(self._open))
        return self._last

    def settle(self, tag: int, *, multiple: bool) -> list[T]:
        """The publishes an answer with ``tag`` and ``multiple`` settles, oldest first
        (none for a tag not open: answered already, or an old channel's)."""
        if not multiple:
            if tag not in self._open:
                return []
            item = self._open.pop(tag)
            self._prune()
            return [item]
        up_to = self._last if tag == 0 else tag
        settled: list[T] = []
        order, open_ = self._order, self._open
        while order and order[0] <= up_to:
            sent = order.popleft()
            if sent in open_:
                settled.append(open_.pop(sent))
        return settled

    def drain(self) -> list[T]:
        """Every open publish, oldest first, and a fresh start (a new channel's tags)."""
        items = list(self._open.values())  # insertion order is tag order
        self._open.clear()
        self._order.clear()
        self._last = 0
        return items

    def _prune(self) -> None:
        """Forget the settled tags at the front (an answer out of order leaves its tag
        in the order until the ones before it are settled too)."""
        order, open_ = self._order, self._open
        while order and order[0] not in open_:
            order.popleft()
