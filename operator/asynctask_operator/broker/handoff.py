"""What the broker's threads finish, handed to the event loop: many for one wake-up.

``loop.call_soon_threadsafe`` (what ``asyncio.wrap_future`` does when a thread's future
settles) writes a byte to the loop's self-pipe each time, which the loop then reads in a
turn of its own: in a burst's profile these wake-ups (``_write_to_self``,
``_read_from_self``) were 4.5% of the operator's samples, one for each confirmed publish
and each delivery. A :class:`Handoff` queues the calls and wakes the loop only when no
wake-up is on its way already; a busy loop then runs all that came meanwhile in one go.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

log = logging.getLogger("asynctask.operator.broker")

T = TypeVar("T")


class Handoff:
    """Calls from any thread, run on ``loop`` in the order they came."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._calls: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._waking = False  # a wake-up is on its way: later calls ride along

    def call(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the loop soon (from any thread)."""
        self._calls.append(fn)
        with self._lock:
            if self._waking:
                return
            self._waking = True
        self.loop.call_soon_threadsafe(self._run)

    def _run(self) -> None:
        with self._lock:
            self._waking = False  # a call queued from now on wakes the loop again
        calls = self._calls
        while calls:
            try:
                calls.popleft()()
            except Exception:
                log.exception("a broker thread's result could not be handed over")

    async def result(self, fut: Future[T]) -> T:
        """Await a thread's future (as ``asyncio.wrap_future``, its result handed over
        here); cancelling the wait cancels the future if it has not started."""
        waiter: asyncio.Future[T] = self.loop.create_future()

        def settle() -> None:
            if waiter.done():
                return
            if fut.cancelled():
                waiter.cancel()
            elif (exc := fut.exception()) is not None:
                waiter.set_exception(exc)
            else:
                waiter.set_result(fut.result())

        fut.add_done_callback(lambda _: self.call(settle))
        try:
            return await waiter
        except asyncio.CancelledError:
            fut.cancel()
            raise
