"""Which held tasks of one queue may be published now, and why the others wait (pure).

:class:`Admission` keeps a queue's held tasks, the tasks it counts in flight, its token
bucket and the namespaces' turns. The order of admission is:

1. **effective priority**, highest first: ``spec.priority``, plus 1 for every
   ``agingSeconds`` the task has been held (when the policy sets it), so a task of
   priority ``p`` outranks every newcomer (at most 100) after ``(101 - p)·agingSeconds``
   held: starvation is bounded;
2. **the namespaces' turns** among tasks of equal effective priority: weighted fair
   queueing (stride scheduling): each namespace has a pass that grows by ``1/weight`` per
   task admitted, the lowest pass goes next, and a namespace that had nothing held starts
   at the lowest pass of those that have, so it gets its share from then on, not credit
   for the time it was idle. With weights ``a`` and ``b`` the two take turns ``a:b``;
3. **creation order** (``creationTimestamp``, then name): the same order after a restart.

Held tasks live in one heap per (namespace, priority): within one, the oldest is first
and has the highest effective priority, so a decision looks at one head per group (a
handful), never at every held task. A removed task (cancelled, deleted) is dropped from
its heap lazily. Times are given by the caller (epoch seconds): nothing here reads a clock.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from asynctask_operator.queues.buckets import TokenBucket
from asynctask_operator.queues.policy import QueuePolicy, Reason

Group = tuple[str, int]  # (namespace, priority)
Item = tuple[float, tuple[str, str], str]  # (held since, creation order, uid)


@dataclass(frozen=True, slots=True)
class Held:
    """A task held back: where it comes from, how urgent, since when, in which order."""

    uid: str
    namespace: str
    priority: int
    since: float  # epoch seconds: ageing counts from here
    order: tuple[str, str]  # (creationTimestamp, name): creation order, stable over restarts


class Admission:
    def __init__(self, policy: QueuePolicy, now: float, in_flight: set[str] | None = None) -> None:
        """``in_flight``: the queue's tasks published and not finished (shared with the
        caller, who counts them for every queue; a new set if not given)."""
        self.policy = policy
        self.bucket: TokenBucket | None = None
        self.in_flight: set[str] = set() if in_flight is None else in_flight
        self._entries: dict[str, Held] = {}
        self._groups: dict[Group, list[Item]] = {}
        self._waiting: dict[str, int] = {}  # namespace -> tasks held
        self._pass: dict[str, float] = {}
        self._vtime = 0.0
        self.reshape(policy, now)

    # policy ----------------------------------------------------------------------------

    def reshape(self, policy: QueuePolicy, now: float) -> None:
        """A changed policy takes effect at once (the bucket keeps the tokens it saved)."""
        self.policy = policy
        rate = policy.rate_limit
        if rate is None:
            self.bucket = None
        elif self.bucket is None:
            self.bucket = TokenBucket(rate.per_second, rate.burst, now)
        else:
            self.bucket.reshape(rate.per_second, rate.burst, now)

    # the held set ----------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, uid: object) -> bool:
        return uid in self._entries

    def hold(self, entry: Held) -> None:
        if entry.uid in self._entries or entry.uid in self.in_flight:
            return
        ns = entry.namespace
        if not self._waiting.get(ns):
            active = [self._pass[n] for n, count in self._waiting.items() if count]
            self._vtime = min(active) if active else self._vtime
            self._pass[ns] = max(self._pass.get(ns, self._vtime), self._vtime)
        self._waiting[ns] = self._waiting.get(ns, 0) + 1
        self._entries[entry.uid] = entry
        heapq.heappush(
            self._groups.setdefault((ns, entry.priority), []),
            (entry.since, entry.order, entry.uid),
        )

    def remove(self, uid: str) -> bool:
        """Forget a held task (cancelled or deleted); True if it was held."""
        entry = self._entries.pop(uid, None)
        if entry is None:
            return False
        self._waiting[entry.namespace] -= 1
        return True

    def started(self, uid: str) -> None:
        """The task is in flight (published, or admitted and about to be)."""
        self.remove(uid)
        self.in_flight.add(uid)

    def finished(self, uid: str) -> None:
        """The task ended or is gone: its slot is free, and it is held no longer."""
        self.in_flight.discard(uid)
        self.remove(uid)

    def oldest_since(self) -> float | None:
        """Since when the longest-held task has been held."""
        heads = [self._head(group) for group in list(self._groups)]
        return min((item[0] for item in heads if item is not None), default=None)

    # decisions -------------------------------------------------------------------------

    def blocked_by(self, now: float) -> Reason | None:
        """The limit that stops the next publish now, if any."""
        policy = self.policy
        if policy.paused:
            return Reason.PAUSED
        if policy.max_in_flight is not None and len(self.in_flight) >= policy.max_in_flight:
            return Reason.CONCURRENCY_LIMIT
        if self.bucket is not None and self.bucket.available(now) < 1:
            return Reason.RATE_LIMITED
        return None

    def admit(self, now: float) -> list[str]:
        """The held tasks to publish now, in order; each takes a slot and a token."""
        admitted: list[str] = []
        while self._entries and self.blocked_by(now) is None:
            best = self._best(now)
            if best is None:
                break
            _, group = best
            _, _, uid = heapq.heappop(self._groups[group])
            ns = group[0]
            self._vtime = self._pass[ns]
            self._pass[ns] += 1.0 / self.policy.weight(ns)
            self.started(uid)
            if self.bucket is not None:
                self.bucket.take(now)
            admitted.append(uid)
        return admitted

    def wake_at(self, now: float) -> float | None:
        """When held tasks may be admitted without any other event: the next token of a
        rate-limited queue; None when only an event (a slot freed, a policy change) can."""
        if not self._entries or self.bucket is None:
            return None
        if self.blocked_by(now) is not Reason.RATE_LIMITED:
            return None
        return self.bucket.next_token(now)

    def reason(self, uid: str, now: float) -> Reason:
        """Why a held task waits: a pause; else behind higher-priority tasks or another
        namespace's turn (WaitingForTurn); else the limit that stops the queue."""
        blocked = self.blocked_by(now)
        if blocked is Reason.PAUSED:
            return blocked
        entry = self._entries.get(uid)
        if entry is not None and self._others_ahead(entry, now):
            return Reason.WAITING_FOR_TURN
        return blocked or Reason.WAITING_FOR_TURN

    def effective_priority(self, entry: Held, now: float) -> int:
        aging = self.policy.aging_seconds
        if not aging:
            return entry.priority
        return entry.priority + math.floor(max(0.0, now - entry.since) / aging)

    # internals -------------------------------------------------------------------------

    def _head(self, group: Group) -> Item | None:
        heap = self._groups[group]
        while heap and self._entries.get(heap[0][2]) is None:
            heapq.heappop(heap)  # removed meanwhile
        if not heap:
            del self._groups[group]
            return None
        return heap[0]

    def _rank(self, group: Group, item: Item, now: float) -> tuple[int, float, tuple[str, str]]:
        """Smaller goes first: higher effective priority, lower pass, older."""
        entry = self._entries[item[2]]
        return (-self.effective_priority(entry, now), self._pass[group[0]], item[1])

    def _best(self, now: float) -> tuple[tuple[int, float, tuple[str, str]], Group] | None:
        best: tuple[tuple[int, float, tuple[str, str]], Group] | None = None
        for group in list(self._groups):
            item = self._head(group)
            if item is None:
                continue
            rank = self._rank(group, item, now)
            if best is None or rank < best[0]:
                best = (rank, group)
        return best

    def _others_ahead(self, entry: Held, now: float) -> bool:
        """Is a task of another namespace, or of higher effective priority, ahead of it?"""
        mine = (
            -self.effective_priority(entry, now),
            self._pass[entry.namespace],
            entry.order,
        )
        for group in list(self._groups):
            item = self._head(group)
            if item is None or item[2] == entry.uid:
                continue
            rank = self._rank(group, item, now)
            if rank < mine and (group[0] != entry.namespace or rank[0] < mine[0]):
                return True
        return False
