"""The wire contract between the operator and workers.

Everything that crosses RabbitMQ is one of the pydantic models below, serialised as JSON.
The worker SDK owns this module; the operator imports it, never the other way round.

Three flows:

* **task messages** (operator → worker), one quorum queue per ``spec.queue``;
* **status messages** (worker → operator), one quorum queue the operator consumes;
* **control messages** (operator → workers), a fanout exchange every worker listens on
  (cancellation, time limits).

Message ids are deterministic, so that a redelivered or re-published message is
recognisably the same message (at-least-once delivery, idempotent consumers).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

#: Bumped on incompatible changes; consumers refuse (dead-letter) other versions.
SCHEMA_VERSION: Final = 1
CONTENT_TYPE = "application/json"


class Phase(enum.StrEnum):
    """The life of a task. The last five are terminal: once written they never change.

    :attr:`terminal` is the one definition of "terminal" in the project.
    """

    PENDING = "Pending"
    PROCESSING = "Processing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    ERROR = "Error"
    CANCELLED = "Cancelled"
    TIMED_OUT = "TimedOut"

    @property
    def terminal(self) -> bool:
        return self not in (Phase.PENDING, Phase.PROCESSING)


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Message(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    v: Literal[1] = SCHEMA_VERSION


class TaskRef(BaseModel):
    """Which AsyncTask object a message is about."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    uid: Annotated[str, Field(min_length=1, max_length=64)]
    namespace: Annotated[str, Field(min_length=1, max_length=253)]
    name: Annotated[str, Field(min_length=1, max_length=253)]


class TaskMessage(_Message):
    """Operator → worker: run this task."""

    kind: Literal["task"] = "task"
    task: TaskRef
    queue: str
    request: Any = None
    attempt: Annotated[int, Field(ge=1)] = 1
    timeout_seconds: Annotated[int | None, Field(ge=1)] = None
    published_at: datetime = Field(default_factory=utcnow)

    @property
    def message_id(self) -> str:
        return task_message_id(self.task.uid, self.attempt)


class ErrorInfo(BaseModel):
    """Why a task did not succeed."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    reason: Annotated[str, Field(min_length=1, max_length=128)]
    message: Annotated[str, Field(max_length=4096)] = ""
    traceback: Annotated[str | None, Field(max_length=8192)] = None


class StatusMessage(_Message):
    """Worker → operator: what happened to a task.

    ``seq`` increases with every message a worker sends for one attempt, so the operator
    can drop stale or duplicated messages; progress never goes backwards within an attempt.
    """

    kind: Literal["status"] = "status"
    task: TaskRef
    attempt: Annotated[int, Field(ge=1)] = 1
    seq: Annotated[int, Field(ge=0)] = 0
    phase: Phase
    progress: Annotated[int | None, Field(ge=0, le=100)] = None
    message: Annotated[str | None, Field(max_length=1024)] = None
    result: Any = None
    error: ErrorInfo | None = None
    worker: Annotated[str | None, Field(max_length=253)] = None
    at: datetime = Field(default_factory=utcnow)

    @property
    def message_id(self) -> str:
        return status_message_id(self.task.uid, self.attempt, self.seq)


class ControlMessage(_Message):
    """Operator → all workers: stop a task if you are running it."""

    kind: Literal["control"] = "control"
    action: Literal["cancel", "timeout"]
    task: TaskRef
    reason: str = ""


def task_message_id(uid: str, attempt: int) -> str:
    return f"task:{uid}:{attempt}"


def status_message_id(uid: str, attempt: int, seq: int) -> str:
    return f"status:{uid}:{attempt}:{seq}"


M = TypeVar("M", bound=_Message)


class MalformedMessage(ValueError):
    """A message that is not valid JSON of the expected kind and version."""


def decode(model: type[M], body: bytes) -> M:
    """Parse a message body, raising :class:`MalformedMessage` on anything invalid."""
    try:
        return model.model_validate_json(body)
    except ValueError as exc:  # pydantic.ValidationError is a ValueError
        raise MalformedMessage(f"not a valid {model.__name__}: {exc}") from exc


def encode(message: _Message) -> bytes:
    return message.model_dump_json(exclude_none=False).encode()
