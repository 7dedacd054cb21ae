"""What a status write tells the rest of the operator, and who listens.

The status writer (:mod:`writer`) makes the one PATCH path; Kubernetes Events, metrics,
webhooks and the deadlines react to a write *after* it succeeded, as observers, in the
order they were given. An observer must not block: it queues or schedules its own work.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from asynctask_operator.spec import AsyncTaskSpec
from asynctask_worker.messages import TaskRef


@dataclass(frozen=True)
class Written:
    """One status write that succeeded: the task, its spec, and the status before and after."""

    ref: TaskRef
    spec: AsyncTaskSpec | None
    previous: dict[str, Any]
    status: dict[str, Any]


class StatusObserver(Protocol):
    def status_written(self, written: Written) -> None:
        """Called after each successful status write, in the event loop."""

    def task_forgotten(self, uid: str) -> None:
        """The task is gone (deleted, or its object replaced): drop what is kept about it."""
