"""The namespace feed: what changed in a namespace, for ``GET …/tasks:watch`` (the dashboard's
live list), fed by the same watch cache as everything else.

The cache calls :meth:`NamespaceFeed.changed` on every change of an entry. The feed keeps:

* counts per (queue, phase) of each namespace, updated by each change (never recounted), so
  a dashboard shows counts of a namespace of any size without listing it;
* for each open stream, the *set* of task names that changed since it last wrote, and one
  :class:`asyncio.Event`. A set, not a queue: a task that changed five times while a client
  was slow is written once, in its latest state, so a slow client costs at most one name per
  task and never holds anyone else back (the same rule as the per-task streams).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from asynctask_gateway.cache import Entry, Key


@dataclass(eq=False)  # compared and hashed by identity: kept in a set
class Subscription:
    """One open namespace stream: the names that changed since its last write."""

    namespace: str
    dirty: set[str] = field(default_factory=set)
    signal: asyncio.Event = field(default_factory=asyncio.Event)
    counts_changed: bool = True  # the first write sends the counts

    def take(self) -> tuple[list[str], bool]:
        """The changed names (sorted) and whether the counts changed; both reset."""
        names, counts = sorted(self.dirty), self.counts_changed
        self.dirty, self.counts_changed = set(), False
        self.signal.clear()
        return names, counts


def counts_document(counts: Counter[tuple[str, str]]) -> dict[str, Any]:
    """``{"total", "phases": {phase: n}, "queues": {queue: {phase: n}}}`` (pure)."""
    phases: Counter[str] = Counter()
    queues: dict[str, Counter[str]] = {}
    for (queue, phase), n in counts.items():
        if n <= 0:
            continue
        phases[phase] += n
        queues.setdefault(queue, Counter())[phase] += n
    return {
        "total": sum(phases.values()),
        "phases": dict(sorted(phases.items())),
        "queues": {q: dict(sorted(c.items())) for q, c in sorted(queues.items())},
    }


class NamespaceFeed:
    def __init__(self) -> None:
        self._counts: dict[str, Counter[tuple[str, str]]] = {}
        self._subscribers: dict[str, set[Subscription]] = {}

    def changed(self, key: Key, old: Entry | None, new: Entry | None) -> None:
        """Called by the cache for every stored or dropped entry."""
        namespace, name = key
        counts = self._counts.setdefault(namespace, Counter())
        before = (old.queue, old.view.phase.value) if old else None
        after = (new.queue, new.view.phase.value) if new else None
        if before != after:
            if before is not None:
                counts[before] -= 1
                if counts[before] <= 0:
                    del counts[before]
            if after is not None:
                counts[after] += 1
        for sub in self._subscribers.get(namespace, ()):
            sub.dirty.add(name)
            sub.counts_changed = sub.counts_changed or before != after
            sub.signal.set()

    def counts(self, namespace: str) -> dict[str, Any]:
        return counts_document(self._counts.get(namespace, Counter()))

    @contextlib.contextmanager
    def subscribe(self, namespace: str) -> Iterator[Subscription]:
        sub = Subscription(namespace)
        self._subscribers.setdefault(namespace, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subscribers.get(namespace, set())
            subs.discard(sub)
            if not subs:
                self._subscribers.pop(namespace, None)

    def subscribers(self, namespace: str) -> int:
        return len(self._subscribers.get(namespace, ()))
