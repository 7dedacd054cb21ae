"""One deadline scheduler for every task: timeouts, retries, cancel confirmations, TTLs.

:mod:`deadlines` decides the times (pure); this module keeps and fires them.

Not a kopf timer per object (each costs an asyncio task and a finalizer): a single heap
and a single asyncio task, so 100k live tasks cost 100k small tuples. Entries are
replaced by setting them again and dropped lazily: only the latest time for a
``(uid, kind)`` pair fires. The scheduler holds no state that cannot be rebuilt: on
restart the operator sets the deadlines again from the objects' timestamps.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import time
from collections.abc import Awaitable, Callable

from asynctask_operator.deadlines import Kind, Wanted, wanted
from asynctask_operator.observers import Written

log = logging.getLogger("asynctask.operator.deadlines")

Fire = Callable[[str, Kind], Awaitable[None]]


class Deadlines:
    """The heap; :meth:`run` is given what to call when a deadline is due."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, str, Kind]] = []
        self._due: dict[tuple[str, Kind], float] = {}
        self._counter = itertools.count()
        self._wakeup = asyncio.Event()

    def __len__(self) -> int:
        return len(self._due)

    def set(self, uid: str, kind: Kind, at: float) -> None:
        """Fire ``kind`` for ``uid`` at ``at`` (epoch seconds), replacing an earlier setting."""
        if self._due.get((uid, kind)) == at:
            return
        self._due[(uid, kind)] = at
        entry = (at, next(self._counter), uid, kind)
        heapq.heappush(self._heap, entry)
        if self._heap[0] is entry:
            self._wakeup.set()  # earlier than what the scheduler sleeps towards
        self._compact()

    def clear(self, uid: str, kind: Kind | None = None) -> None:
        for k in [kind] if kind is not None else list(Kind):
            self._due.pop((uid, k), None)

    def count(self, kind: Kind) -> int:
        """How many deadlines of ``kind`` are set (e.g. tasks held for spec.notBefore)."""
        return sum(1 for _, k in self._due if k is kind)

    def due(self, uid: str, kind: Kind) -> float | None:
        return self._due.get((uid, kind))

    def apply(self, uid: str, wanted: Wanted) -> None:
        """Set or clear what :func:`deadlines.wanted` asked for; leave the other kinds."""
        for kind, at in wanted.items():
            if at is None:
                self.clear(uid, kind)
            else:
                self.set(uid, kind, at)

    def status_written(self, written: Written) -> None:
        """An observer of the status writer: set the deadlines the new status calls for."""
        self.apply(written.ref.uid, wanted(written.status, written.spec))

    def task_forgotten(self, uid: str) -> None:
        self.clear(uid)

    async def run(self, fire: Fire) -> None:
        """Fire each deadline when it is due, one at a time, until cancelled."""
        while True:
            delay = self._next_delay()
            self._wakeup.clear()
            if delay is None or delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wakeup.wait(), delay)
                continue
            at, _, uid, kind = heapq.heappop(self._heap)
            if self._due.get((uid, kind)) != at:
                continue  # replaced or cleared since
            del self._due[(uid, kind)]
            try:
                await fire(uid, kind)
            except Exception:
                log.exception("deadline %s of %s failed; retrying in 5s", kind.value, uid)
                self.set(uid, kind, self._clock() + 5)

    def _next_delay(self) -> float | None:
        while self._heap:
            at, _, uid, kind = self._heap[0]
            if self._due.get((uid, kind)) == at:
                return max(0.0, at - self._clock())
            heapq.heappop(self._heap)  # stale entry
        return None

    def _compact(self) -> None:
        """Rebuild the heap when stale entries dominate (many re-settings)."""
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._due):
            self._heap = [e for e in self._heap if self._due.get((e[2], e[3])) == e[0]]
            heapq.heapify(self._heap)
