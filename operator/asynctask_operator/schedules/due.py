"""When each schedule is next due: one heap for every schedule (pure).

A schedule has at most one due time; setting a new one replaces it (the old heap item
stays behind, skipped when it comes up, and the heap is rebuilt once such stale items
outnumber the live ones four to one). Ties are served in the order they were set, so
fires due at the same instant go oldest first.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DueTimes(Generic[K]):
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._counter = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def get(self, key: K) -> float | None:
        return self._due.get(key)

    def set(self, key: K, at: float) -> bool:
        """Make ``at`` the key's due time; True if it is now the earliest of all."""
        if self._due.get(key) == at:
            return False
        self._due[key] = at
        item = (at, next(self._counter), key)
        heapq.heappush(self._heap, item)
        first = self._heap[0] is item
        if len(self._heap) > 64 and len(self._heap) > 4 * len(self._due):
            self._heap = [e for e in self._heap if self._due.get(e[2]) == e[0]]
            heapq.heapify(self._heap)
        return first

    def discard(self, key: K) -> None:
        self._due.pop(key, None)

    def earliest(self) -> float | None:
        """The earliest due time, or None when nothing is due."""
        while self._heap:
            at, _, key = self._heap[0]
            if self._due.get(key) == at:
                return at
            heapq.heappop(self._heap)
        return None

    def pop(self, now: float) -> K | None:
        """The key due earliest if it is due at ``now`` (no longer due then), else None."""
        at = self.earliest()
        if at is None or at > now:
            return None
        _, _, key = heapq.heappop(self._heap)
        del self._due[key]
        return key
