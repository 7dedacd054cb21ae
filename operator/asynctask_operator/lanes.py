"""Per-key lanes: items of one key are handled in order, items of different keys at once.

The status inbox used to handle every worker message in turn, each one waiting for its
status PATCH, so the operator wrote one status at a time however many tasks were running
(the profile of a burst: the event loop idle, one API thread busy, the others waiting).
Ordering matters only within a task, so each task gets a lane: a FIFO of its messages and
at most one coroutine working through it. Different tasks' writes overlap; the broker's
prefetch bounds how many messages (so how many lanes) are in flight.

A lane hands its handler every item queued so far as one batch (up to ``max_batch``), in
order: a handler may then fold several messages of one task into one write. ``linger``
may ask a lane to wait a moment for more before handing over a batch (see
:meth:`inbox.StatusInbox.linger`). A lane that runs dry is dropped, so idle tasks cost
nothing here.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("asynctask.operator")

T = TypeVar("T")

Handler = Callable[[str, list[T]], Awaitable[None]]


class Lanes(Generic[T]):
    def __init__(
        self,
        handle: Handler[T],
        *,
        max_batch: int = 32,
        linger: Callable[[list[T]], float] = lambda _: 0.0,
        on_failure: str = "unacked ones will be redelivered",
    ) -> None:
        self._handle = handle
        self._on_failure = on_failure  # what becomes of a batch whose handler failed
        self._max_batch = max_batch
        self._linger = linger
        self._queues: dict[str, deque[T]] = {}
        self._runners: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Lanes with work queued or under way."""
        return len(self._queues)

    def submit(self, key: str, item: T) -> None:
        """Queue ``item`` behind the earlier items of ``key``; start the lane if idle."""
        lane = self._queues.get(key)
        if lane is not None:
            lane.append(item)
            return
        self._queues[key] = deque([item])
        runner = asyncio.get_running_loop().create_task(self._run(key), name=f"lane-{key}")
        self._runners.add(runner)
        runner.add_done_callback(self._runners.discard)

    async def _run(self, key: str) -> None:
        lane = self._queues[key]
        try:
            while lane:
                batch = [lane.popleft() for _ in range(min(len(lane), self._max_batch))]
                wait = 0.0 if lane else self._linger(batch)
                if wait > 0:
                    await asyncio.sleep(wait)
                    more = min(len(lane), self._max_batch - len(batch))
                    batch.extend(lane.popleft() for _ in range(more))
                try:
                    await self._handle(key, batch)
                except Exception:
                    # The handler settles what it can (e.g. the inbox acks what it wrote).
                    log.exception(
                        "failed to handle %d item(s) of %s; %s", len(batch), key, self._on_failure
                    )
        finally:
            del self._queues[key]

    async def join(self) -> None:
        """Wait until every lane ran dry (tests, and a clean shutdown)."""
        while self._runners:
            await asyncio.gather(*self._runners, return_exceptions=True)

    def cancel(self) -> None:
        for runner in self._runners:
            runner.cancel()
