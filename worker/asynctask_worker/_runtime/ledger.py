"""What a dispatcher holds, under its one lock, and the steps that change it.

Deliveries waiting for a slot, jobs running or reporting their outcome, the attempts whose
terminal status the broker confirmed (a redelivery of one is acked), and whether new work
is taken. Each method is one step under the lock: the decision on what a delivery needs
(:meth:`Ledger.triage`), which jobs start, the life of a job (``RUNNING → FINISHING →
DONE``, or ``RUNNING → RELEASED``) so that exactly one ending wins. What follows a step
(starting a handler, sending a status, acking) the dispatcher does outside the lock.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import NamedTuple

from asynctask_worker._runtime.jobs import Delivery, Job, JobKey, State, Verdict, job_key, overdue
from asynctask_worker._runtime.revocation import BoundedMap, Revocation, RevokedSet

#: A delivery settled without a handler, with the verdict that says how.
Early = tuple[Delivery, Verdict, Revocation | None]


class Round(NamedTuple):
    """What one turn of the supervisor found to do: jobs to start, deliveries to settle,
    jobs to tell to stop (past their time limit) and to stop hard (past the grace)."""

    starts: list[Job]
    early: list[Early]
    soft: list[Job]
    hard: list[Job]


class Ledger:
    """A dispatcher's deliveries and jobs, under one lock (:attr:`cond`)."""

    def __init__(
        self,
        revoked: RevokedSet,
        *,
        concurrency: int,
        done_capacity: int,
        wake_for_starts: bool = True,
    ) -> None:
        self.revoked = revoked
        #: Wake the supervisor when a delivery arrives or a slot frees up. Off where the
        #: caller starts jobs itself (:meth:`take_startable`); the supervisor's tick is
        #: then only the fallback.
        self.wake_for_starts = wake_for_starts
        self.concurrency = concurrency
        self.cond = threading.Condition()
        self.pending: deque[Delivery] = deque()
        self.running: dict[JobKey, Job] = {}
        #: Attempts whose terminal status the broker confirmed: a redelivery is acked.
        self.done: BoundedMap[JobKey, bool] = BoundedMap(done_capacity)
        self.intake = True
        self.stopped = False

    # arrivals -----------------------------------------------------------------------------

    def admit(self, d: Delivery) -> tuple[Verdict, Revocation | None]:
        """A delivery arrived: queue it for a slot if it is new; say what it needs."""
        with self.cond:
            if not self.intake:
                return Verdict.REQUEUE, None
            verdict, revocation = self.triage(d)
            if verdict is Verdict.NEW:
                self.pending.append(d)
                if self.wake_for_starts:
                    self.cond.notify_all()
            return verdict, revocation

    def triage(self, d: Delivery) -> tuple[Verdict, Revocation | None]:
        """What to do with a delivery (lock held); adopts a redelivery of a running job.

        Made on arrival and again when a slot frees up: the task may have ended or been
        revoked while its delivery waited.
        """
        key = job_key(d.message)
        if key in self.done:
            return Verdict.DUPLICATE, None
        if (job := self.running.get(key)) is not None:
            # Redelivered (reconnect) or published again while it runs here: adopt it.
            job.superseded.append(job.delivery)
            job.delivery = d
            return Verdict.ADOPTED, None
        if (revocation := self.revoked.get(d.message.task.uid)) is not None:
            return Verdict.REVOKED, revocation
        return Verdict.NEW, None

    def revoke(self, uid: str) -> tuple[list[Job], list[Delivery]]:
        """The running jobs of a task, and its waiting deliveries (taken off the queue)."""
        with self.cond:
            jobs = [
                j
                for j in self.running.values()
                if j.message.task.uid == uid and j.state is State.RUNNING
            ]
            queued = [d for d in self.pending if d.message.task.uid == uid]
            for d in queued:
                self.pending.remove(d)
        return jobs, queued

    # the supervisor -----------------------------------------------------------------------

    def next_round(self, tick: float, new_job: Callable[[Delivery], Job]) -> Round | None:
        """Wait up to ``tick`` (or a notification), then take what is to do; None once
        stopped."""
        with self.cond:
            if self.stopped:
                return None
            self.cond.wait(tick)
            if self.stopped:
                return None
            starts, early = self._take_startable(new_job)
            soft, hard = overdue(self.running.values(), time.monotonic())
        return Round(starts, early, soft, hard)

    def take_startable(self, new_job: Callable[[Delivery], Job]) -> tuple[list[Job], list[Early]]:
        """Jobs to start in the free slots now (without waiting for the supervisor's turn)."""
        with self.cond:
            return self._take_startable(new_job)

    def _take_startable(self, new_job: Callable[[Delivery], Job]) -> tuple[list[Job], list[Early]]:
        """Jobs to start in the free slots, and the waiting deliveries settled meanwhile."""
        starts: list[Job] = []
        early: list[Early] = []
        while self.intake and self.pending and len(self.running) < self.concurrency:
            d = self.pending.popleft()
            verdict, revocation = self.triage(d)
            if verdict is Verdict.NEW:
                job = new_job(d)
                self.running[job.key] = job
                starts.append(job)
            else:
                early.append((d, verdict, revocation))
        return starts, early

    def stop(self) -> None:
        with self.cond:
            self.stopped = True
            self.cond.notify_all()

    # the life of a job --------------------------------------------------------------------

    def arm_time_limit(self, job: Job, seconds: float | None) -> bool:
        """The handler starts: its time limit counts from now; False if it already ended."""
        with self.cond:
            if job.state is not State.RUNNING:
                return False  # already over (stopped hard before its process got going)
            job.soft_deadline = None if seconds is None else time.monotonic() + seconds
            return True

    def arm_grace(self, job: Job, grace: float) -> bool:
        """A soft stop: the grace period starts (once); False if the job already ended."""
        with self.cond:
            if job.state is not State.RUNNING:
                return False
            if job.hard_deadline is None:
                job.hard_deadline = time.monotonic() + grace
            return True

    def finishing(self, job: Job) -> bool:
        """``RUNNING → FINISHING``: this ending wins; False if another one already did."""
        with self.cond:
            if job.state is not State.RUNNING:
                return False
            job.state = State.FINISHING
            return True

    def settled(self, job: Job, confirmed: bool) -> list[Delivery]:
        """``→ DONE``: its slot is free; the deliveries to ack (or requeue) now."""
        with self.cond:
            deliveries = job.deliveries
            job.state = State.DONE
            if self.running.get(job.key) is job:
                del self.running[job.key]
            if confirmed:
                self.done.put(job.key, True)
            if self.wake_for_starts:
                self.cond.notify_all()
        return deliveries

    # shutdown and reconnects --------------------------------------------------------------

    def forget_pending(self) -> int:
        with self.cond:
            n = len(self.pending)
            self.pending.clear()
        return n

    def close_intake(self) -> list[Delivery]:
        """Take nothing new; the deliveries that had not started."""
        with self.cond:
            self.intake = False
            queued = list(self.pending)
            self.pending.clear()
        return queued

    def release_running(self) -> list[Job]:
        """``RUNNING → RELEASED``: the jobs still running, off the ledger."""
        with self.cond:
            jobs = [j for j in self.running.values() if j.state is State.RUNNING]
            for job in jobs:
                job.state = State.RELEASED
                del self.running[job.key]
        return jobs

    # counts -------------------------------------------------------------------------------

    def count(self, *states: State) -> int:
        """Jobs on the ledger (in one of ``states``, if given)."""
        with self.cond:
            return sum(1 for j in self.running.values() if not states or j.state in states)

    def waiting(self) -> int:
        with self.cond:
            return len(self.pending)
