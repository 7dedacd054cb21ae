"""What the dispatcher schedules: jobs, and the seams to the transport.

A *delivery* (a received task message plus how to settle it) and a *status sink* (where
status messages go) are protocols: the RabbitMQ runtime and the in-memory
:class:`~asynctask_worker.testing.StubBroker` each provide their own.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from asynctask_worker._runtime.execution import Execution
from asynctask_worker.context import TaskContext
from asynctask_worker.messages import Phase, TaskMessage, TaskRef

Pool = Literal["thread", "process"]
JobKey = tuple[str, int]  # (task uid, TaskMessage.attempt): one published attempt


class Delivery(Protocol):
    """One received task message and how to settle it with its broker (thread-safe)."""

    @property
    def message(self) -> TaskMessage: ...

    @property
    def attempt(self) -> int: ...

    def ack(self) -> None: ...

    def requeue(self) -> None: ...


class StatusSink(Protocol):
    """Where status messages go; ``send`` resolves once the message is safely stored."""

    def send(self, task: TaskRef, attempt: int, phase: Phase, **fields: Any) -> Future[None]: ...

    def progress(self, task: TaskRef, attempt: int, percent: int, message: str | None) -> None: ...


class State(enum.Enum):
    RUNNING = "running"
    FINISHING = "finishing"
    RELEASED = "released"
    DONE = "done"


class Verdict(enum.Enum):
    """What a delivery needs, decided by :meth:`.ledger.Ledger.triage`."""

    NEW = "new"  # run it (when a slot is free)
    DUPLICATE = "duplicate"  # it already finished here: ack it
    ADOPTED = "adopted"  # it runs here: the running job settles the new delivery
    REVOKED = "revoked"  # cancelled before it started: report that, never run it
    REQUEUE = "requeue"  # shutting down: back to the queue


@dataclass(eq=False)
class Job:
    delivery: Delivery
    started: float
    soft_deadline: float | None
    ctx: TaskContext = field(init=False)  # set right after: its progress sink needs the job
    hard_deadline: float | None = None
    state: State = State.RUNNING
    execution: Execution | None = None
    #: Earlier deliveries of this attempt it adopted a newer one from. On a connection that
    #: is gone, settling them does nothing; on the live one (the same message published
    #: twice) each still holds a prefetch slot until it is settled with the job.
    superseded: list[Delivery] = field(default_factory=list)

    @property
    def deliveries(self) -> list[Delivery]:
        """Every delivery this job settles when it ends: the adopted ones, then its own."""
        return [*self.superseded, self.delivery]

    @property
    def message(self) -> TaskMessage:
        return self.delivery.message

    @property
    def key(self) -> JobKey:
        return job_key(self.delivery.message)


def job_key(msg: TaskMessage) -> JobKey:
    return (msg.task.uid, msg.attempt)


def overdue(jobs: Iterable[Job], now: float) -> tuple[list[Job], list[Job]]:
    """Running jobs past their time limit (to be told to stop, once), and those past the
    grace period after being told (to be stopped hard)."""
    running = [j for j in jobs if j.state is State.RUNNING]
    soft = [
        j
        for j in running
        if j.soft_deadline is not None and now >= j.soft_deadline and not j.ctx.cancelled
    ]
    hard = [j for j in running if j.hard_deadline is not None and now >= j.hard_deadline]
    return soft, hard
