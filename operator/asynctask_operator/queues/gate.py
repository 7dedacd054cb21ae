"""The queue gate: an AsyncQueue's policy, applied where a task is first published.

:meth:`QueueGate.offer` is asked by the tracker before a task's first publish. A queue
without an AsyncQueue gets None: the task is published exactly as before, with nothing
else done. Under a policy the task joins the queue's held set and :mod:`admission` decides
at once: admitted, it is published as usual (no extra write); held, the tracker writes its
one Pending status with the reason. Held tasks admitted later (a slot freed, a token came,
a resume) are handed to the tracker through :attr:`QueueGate.released`.

In flight = published and not terminal, counted for every queue from what the operator
sees of the tasks (:meth:`track`, the status writes, forgotten tasks): a terminal write or
a deletion frees a slot; a retry keeps it. Until the gate is ready (the AsyncQueues
listed, the tasks listed and handled) nothing is decided: offers and held tasks found in
the list are parked, then held all at once, so a restart admits in the same order with the
same counts as before it. The gate is asyncio-only and synchronous: a decision is atomic.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from asynctask_operator import status as st
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.observers import Written
from asynctask_operator.queues.admission import Admission, Held
from asynctask_operator.queues.buckets import RateMeter
from asynctask_operator.queues.policy import QueuePolicy, Reason, explain, parse
from asynctask_operator.spec import AsyncTaskSpec
from asynctask_operator.tasks import TaskState

UNLIMITED = QueuePolicy()


@dataclass(frozen=True)
class Verdict:
    """What to do with a task offered for its first publish."""

    admitted: bool
    reason: Reason | None = None
    message: str = ""
    write: bool = False  # held for the first time: write its Pending status (reason)


ADMITTED = Verdict(True)
PARKED = Verdict(False)  # the gate is not ready: decided when it is


@dataclass(frozen=True)
class QueueView:
    """What the gate knows of one queue, for its AsyncQueue's status."""

    held: int
    in_flight: int
    oldest_since: float | None
    blocked_by: Reason | None
    start_rate: float
    policy: QueuePolicy
    policy_error: str


class QueueGate:
    def __init__(
        self,
        metrics: OperatorMetrics,
        clock: Callable[[], float] = time.time,
        *,
        wait_for_sync: bool = True,
    ) -> None:
        """``wait_for_sync``: decide nothing until :meth:`synced` was told both parts (the
        operator's way); without it, the gate is ready at once (no AsyncQueue watch)."""
        self.metrics = metrics
        self.clock = clock
        self.released: asyncio.Queue[str] = asyncio.Queue()
        self._policies: dict[str, QueuePolicy] = {}
        self._errors: dict[str, str] = {}
        self._queues: dict[str, Admission] = {}  # queues with an AsyncQueue or held tasks
        self._flying: dict[str, set[str]] = {}  # every queue's tasks in flight
        self._meters: dict[str, RateMeter] = {}
        self._parked_new: dict[str, tuple[str, Held]] = {}
        self._parked_held: dict[str, tuple[str, Held]] = {}
        self._synced = {"queues": not wait_for_sync, "tasks": not wait_for_sync}
        self._kick = asyncio.Event()

    # readiness -------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return all(self._synced.values())

    def synced(self, part: str) -> None:
        """``queues`` (the AsyncQueues listed) or ``tasks`` (the tasks listed and handled):
        once both, the parked held tasks are held and the parked offers made again."""
        was = self.ready
        self._synced[part] = True
        if self.ready and not was:
            # Every parked task joins its queue's held set at once (a queue without an
            # AsyncQueue admits them all), so the first admissions see them all; those
            # offered while parked are offered again, for their held write if they stay.
            for queue, entry in [*self._parked_held.values(), *self._parked_new.values()]:
                self._admission(queue).hold(entry)
            for uid in self._parked_new:
                self.released.put_nowait(uid)
            self._parked_held.clear()
            self._parked_new.clear()
            self._kick.set()

    # policies (the AsyncQueue watch) ---------------------------------------------------

    def set_policy(self, queue: str, spec: object) -> QueuePolicy:
        policy, error = parse(spec)
        self._policies[queue] = policy
        self._errors[queue] = error
        self._admission(queue).reshape(policy, self.clock())
        self._kick.set()
        return policy

    def drop_policy(self, queue: str) -> None:
        """The AsyncQueue is gone: the queue publishes at once again, held tasks too."""
        self._policies.pop(queue, None)
        self._errors.pop(queue, None)
        adm = self._queues.get(queue)
        if adm is not None:
            adm.reshape(UNLIMITED, self.clock())
        self._kick.set()

    def policy(self, queue: str) -> QueuePolicy | None:
        return self._policies.get(queue)

    # the tracker's questions ----------------------------------------------------------

    def offer(self, task: TaskState, spec: AsyncTaskSpec) -> Verdict | None:
        """May ``task`` be published for its first attempt now? None: the queue has no
        AsyncQueue (publish as always)."""
        if not self.ready:
            self._parked_new[task.uid] = (spec.queue, self._entry(task, spec))
            return PARKED
        queue = spec.queue
        policy = self._policies.get(queue)
        if policy is None:
            return None
        adm = self._admission(queue)
        if task.uid in adm.in_flight:
            return ADMITTED  # admitted before: its publish is being done (again)
        adm.hold(self._entry(task, spec))
        now = self.clock()
        admitted = adm.admit(now)
        self._admitted(queue, admitted, now, at_once=task.uid)
        if task.uid in admitted:
            return ADMITTED
        reason = adm.reason(task.uid, now)
        first = st.phase_of(task.status) is None
        self.metrics.queue_decisions.labels(queue, "held").inc()
        return Verdict(False, reason, explain(reason, queue, policy), write=first)

    def track(self, task: TaskState) -> None:
        """A task as the watch shows it: count it in flight, free its slot, or (a task held
        before a restart) hold it again."""
        spec = task.spec
        if spec is None:
            return
        phase = st.phase_of(task.status)
        if phase is not None and phase.terminal:
            self.finished(task.uid)
        elif task.submitted or task.status.get("messageId"):
            self._flying.setdefault(spec.queue, set()).add(task.uid)
            adm = self._queues.get(spec.queue)
            if adm is not None:
                adm.remove(task.uid)
        elif st.held_by_queue(task.status):
            if not self.ready:
                self._parked_held[task.uid] = (spec.queue, self._entry(task, spec))
            elif task.uid not in self._flying.get(spec.queue, ()):
                self._admission(spec.queue).hold(self._entry(task, spec))
                self._kick.set()

    def is_held(self, uid: str) -> bool:
        return any(uid in adm for adm in self._queues.values())

    def finished(self, uid: str) -> None:
        """The task ended or is gone: its slot is free, it is held no longer."""
        self._parked_new.pop(uid, None)
        self._parked_held.pop(uid, None)
        for queue, flying in self._flying.items():
            if uid in flying:
                flying.discard(uid)
                if queue in self._queues:
                    self._kick.set()
        for adm in self._queues.values():
            adm.remove(uid)

    # observer of status writes ---------------------------------------------------------

    def status_written(self, written: Written) -> None:
        phase = st.phase_of(written.status)
        if phase is not None and phase.terminal:
            self.finished(written.ref.uid)
        elif written.status.get("messageId") and written.spec is not None:
            self._flying.setdefault(written.spec.queue, set()).add(written.ref.uid)

    def task_forgotten(self, uid: str) -> None:
        self.finished(uid)

    # the admission loop ----------------------------------------------------------------

    async def run(self) -> None:
        """Admit held tasks whenever something changed or a token is due, until cancelled."""
        while True:
            self._kick.clear()
            wake = self.decide()
            timeout = None if wake is None else max(0.0, wake - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), timeout)

    def decide(self) -> float | None:
        """Admit what every queue may admit now; when to look again (None: on an event)."""
        if not self.ready:
            return None
        now, wake = self.clock(), None
        for queue, adm in list(self._queues.items()):
            self._admitted(queue, adm.admit(now), now)
            at = adm.wake_at(now)
            if at is not None:
                wake = at if wake is None else min(wake, at)
            if not len(adm) and queue not in self._policies:
                del self._queues[queue]
        return wake

    def view(self, queue: str) -> QueueView:
        now = self.clock()
        adm = self._queues.get(queue)
        policy = self._policies.get(queue, UNLIMITED)
        meter = self._meters.get(queue)
        return QueueView(
            held=len(adm) if adm else 0,
            in_flight=len(self._flying.get(queue, ())),
            oldest_since=adm.oldest_since() if adm else None,
            blocked_by=adm.blocked_by(now) if adm else None,
            start_rate=meter.rate(now) if meter else 0.0,
            policy=policy,
            policy_error=self._errors.get(queue, ""),
        )

    # internals -------------------------------------------------------------------------

    def _admission(self, queue: str) -> Admission:
        adm = self._queues.get(queue)
        if adm is None:
            policy = self._policies.get(queue, UNLIMITED)
            flying = self._flying.setdefault(queue, set())
            adm = self._queues[queue] = Admission(policy, self.clock(), flying)
        return adm

    def _entry(self, task: TaskState, spec: AsyncTaskSpec) -> Held:
        created = st.parse_time(task.created).timestamp() if task.created else self.clock()
        since = max(created, spec.not_before_epoch() or 0.0)
        return Held(task.uid, task.namespace, spec.priority, since, (task.created, task.name))

    def _admitted(self, queue: str, uids: list[str], now: float, at_once: str = "") -> None:
        if not uids:
            return
        self._meters.setdefault(queue, RateMeter()).add(now, len(uids))
        self.metrics.queue_admitted.labels(queue).inc(len(uids))
        for uid in uids:
            if uid == at_once:
                self.metrics.queue_decisions.labels(queue, "admitted").inc()
            else:
                self.metrics.queue_decisions.labels(queue, "released").inc()
                self.released.put_nowait(uid)
