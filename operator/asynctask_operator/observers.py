"""What a status write tells the rest of the operator, and who listens.

The status writer (:mod:`writer`) makes the one PATCH path; Kubernetes Events, metrics,
webhooks and the deadlines react to a write *after* it succeeded, as observers, in the
order they were given. An observer must not block: it queues or schedules its own work.
The webhook dispatcher answers back with a :class:`WebhookOutcome` of each event, which the
tracker writes into ``status.webhook``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NotRequired, Protocol, TypedDict

from asynctask_operator.spec import AsyncTaskSpec
from asynctask_worker.messages import TaskRef


@dataclass(frozen=True)
class Written:
    """One status write that succeeded: the task, its spec, and the status before and after."""

    ref: TaskRef
    spec: AsyncTaskSpec | None
    previous: dict[str, Any]
    status: dict[str, Any]


class WebhookOutcome(TypedDict):
    """What ``status.webhook`` should say after an event was delivered or given up."""

    delivered: bool  # this event (lastEventId) reached the receiver
    attempts: int  # attempts made for this event
    lastAttemptTime: str
    lastEventId: str
    lastDeliveredPhase: NotRequired[str]  # the phase of the latest event delivered
    lastError: NotRequired[str]  # why this event was not delivered


class StatusObserver(Protocol):
    def status_written(self, written: Written) -> None:
        """Called after each successful status write, in the event loop."""

    def task_forgotten(self, uid: str) -> None:
        """The task is gone (deleted, or its object replaced): drop what is kept about it."""
