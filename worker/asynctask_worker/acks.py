"""Which acks a consuming thread sends for the deliveries settled since its last turn.

Each ack used to be a wake-up of the thread that owns the connection and a frame of its
own. The acks are now collected and sent in one turn of that thread: for the run of acks
that begins at the oldest delivery still open, one ``basic.ack`` with ``multiple`` set (it
settles every delivery of the channel up to its tag), and single acks for the others.
``multiple`` may only cover deliveries that were meant to be acked: a delivery still being
handled, requeued or refused (dead-lettered) must not be swept up, so the book keeps the
channel's open deliveries in order and a run stops at the first one not acked in this turn.
The worker's consumer thread and the operator's consuming thread share this book (pure: no
pika).

Delivery tags grow with each delivery on a channel; a new connection (a new channel)
starts the book afresh (:meth:`AckBook.reset`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Acks:
    """What to send: ``up_to`` with ``multiple`` (None: no run of two or more), then each
    of ``singles`` alone."""

    up_to: int | None = None
    singles: list[int] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return len(self.singles) + (self.up_to is not None)


class AckBook:
    """The deliveries of one channel not yet settled, oldest first."""

    def __init__(self) -> None:
        self._open: dict[int, None] = {}  # insertion order is tag order

    def __len__(self) -> int:
        return len(self._open)

    def delivered(self, tag: int) -> None:
        self._open[tag] = None

    def settled(self, tag: int) -> bool:
        """A delivery settled on its own (rejected, or acked at once); False if it is not
        open (an old channel's, or settled already): nothing is to be sent for it then."""
        return self._open.pop(tag, 0) is None

    def reset(self) -> None:
        """A new channel: the old one's deliveries are the broker's again."""
        self._open.clear()

    def plan(self, tags: Iterable[int]) -> Acks:
        """The frames that ack ``tags`` (acks asked for in one turn); tags not open are
        left out (acking a tag twice would close the channel)."""
        wanted = {tag for tag in tags if tag in self._open}
        if not wanted:
            return Acks()
        run: list[int] = []
        for tag in self._open:
            if tag not in wanted:
                break
            run.append(tag)
        for tag in wanted:
            del self._open[tag]
        if len(run) < 2:
            return Acks(None, sorted(wanted))
        rest = wanted.difference(run)
        return Acks(run[-1], sorted(rest))
