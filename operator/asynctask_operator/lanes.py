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
:meth:`inbox.StatusInbox.linger`); it is asked again as more comes, so a batch it finds
complete goes at once. A lane that runs dry is dropped, so idle tasks cost
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
        self._arrivals: dict[str, asyncio.Event] = {}  # lanes lingering for more
        self._runner_of: dict[str, asyncio.Task[None]] = {}
        self._hurried: set[str] = set()  # lanes to hand over what they hold, not linger

    def __len__(self) -> int:
        """Lanes with work queued or under way."""
        return len(self._queues)

    def submit(self, key: str, item: T) -> None:
        """Queue ``item`` behind the earlier items of ``key``; start the lane if idle."""
        lane = self._queues.get(key)
        if lane is not None:
            lane.append(item)
            arrived = self._arrivals.get(key)
            if arrived is not None:
                arrived.set()  # a lingering lane looks at what came
            return
        self._queues[key] = deque([item])
        runner = asyncio.get_running_loop().create_task(self._run(key), name=f"lane-{key}")
        self._runners.add(runner)
        self._runner_of[key] = runner
        runner.add_done_callback(self._runners.discard)

    async def flush(self, key: str, within: float) -> None:
        """Have lane ``key`` hand over what it holds without lingering, and wait (up to
        ``within`` seconds) until it ran dry; nothing if it is idle."""
        runner = self._runner_of.get(key)
        if runner is None:
            return
        self._hurried.add(key)
        arrived = self._arrivals.get(key)
        if arrived is not None:
            arrived.set()
        await asyncio.wait({runner}, timeout=within)

    async def _run(self, key: str) -> None:
        lane = self._queues[key]
        try:
            while lane:
                batch = [lane.popleft() for _ in range(min(len(lane), self._max_batch))]
                if not lane:
                    await self._gather(key, lane, batch)
                try:
                    await self._handle(key, batch)
                except Exception:
                    # The handler settles what it can (e.g. the inbox acks what it wrote).
                    log.exception(
                        "failed to handle %d item(s) of %s; %s", len(batch), key, self._on_failure
                    )
        finally:
            del self._queues[key]
            self._runner_of.pop(key, None)
            self._hurried.discard(key)

    async def _gather(self, key: str, lane: deque[T], batch: list[T]) -> None:
        """Wait as long as ``linger`` asks for more items of ``key`` (never past the first
        answer's time), adding those that come to ``batch``; each arrival asks again, so a
        batch that ``linger`` finds complete (e.g. a task's end came) goes at once."""
        wait = 0.0 if key in self._hurried else self._linger(batch)
        if wait <= 0:
            return
        loop = asyncio.get_running_loop()
        end = loop.time() + wait
        while len(batch) < self._max_batch:
            arrived = self._arrivals[key] = asyncio.Event()
            timer = loop.call_later(wait, arrived.set)
            try:
                await arrived.wait()
            finally:
                timer.cancel()
                self._arrivals.pop(key, None)
            more = min(len(lane), self._max_batch - len(batch))
            batch.extend(lane.popleft() for _ in range(more))
            wait = min(end - loop.time(), self._linger(batch)) if more else 0.0
            if wait <= 0 or key in self._hurried:
                return

    async def join(self) -> None:
        """Wait until every lane ran dry (tests, and a clean shutdown)."""
        while self._runners:
            await asyncio.gather(*self._runners, return_exceptions=True)

    def cancel(self) -> None:
        for runner in self._runners:
            runner.cancel()
