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

``docs/protocol.md`` documents the contract for implementations in other languages, with
a JSON Schema per message generated from these models (:mod:`asynctask_worker.schemas`).
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from asynctask_worker.payloads import PayloadGrant, PayloadRef

#: Bumped on incompatible changes; consumers refuse other versions (task and status messages
#: are dead-lettered, control messages ignored). Unknown fields are ignored, not refused.
SCHEMA_VERSION: Final = 1
CONTENT_TYPE = "application/json"

#: The longest a worker may hold an attempt's ``Processing`` after its handler started
#: (its start window, ``ASYNCTASK_WORKER_START_REPORT_SECONDS``): an attempt that ends
#: within it sends only its end, with ``started_at``. The operator waits longer than this
#: for a worker's word before it records a published task cancelled before it started.
MAX_START_REPORT_SECONDS: Final = 0.5


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
    """Which AsyncTask object a message is about.

    Spelled as Kubernetes spells them (a namespace is a DNS label, a name a DNS subdomain),
    so that a message naming anything else is refused as malformed rather than turned into
    an API request for a path that cannot exist.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    uid: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9-]+$")]
    namespace: Annotated[
        str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    ]
    name: Annotated[
        str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    ]


class TaskMessage(_Message):
    """Operator → worker: run this task."""

    kind: Literal["task"] = "task"
    task: TaskRef
    queue: str
    request: Any = None
    #: The request in object storage instead of ``request`` (docs/payloads.md).
    request_ref: PayloadRef | None = None
    #: Presigned URLs for this attempt's stored request and result, when storage is on.
    payload: PayloadGrant | None = None
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
    #: A Succeeded result stored in object storage instead of ``result``.
    result_ref: PayloadRef | None = None
    error: ErrorInfo | None = None
    worker: Annotated[str | None, Field(max_length=253)] = None
    at: datetime = Field(default_factory=utcnow)
    #: When the attempt's handler started, on a terminal message of an attempt whose
    #: ``Processing`` was never sent (it ended within the worker's start window): the
    #: operator records it as ``status.startTime``, as it would the ``Processing``'s ``at``.
    started_at: datetime | None = None

    @property
    def start_time(self) -> datetime:
        """When this message says its attempt started (if it is the attempt's first)."""
        return self.started_at or self.at

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


#: How deep ``spec.request`` may nest (a scalar is 0, ``{"a": 1}`` is 1). pydantic's JSON
#: parser refuses documents nested much deeper than 200 levels, so a deeper request would
#: reach no handler: the operator refuses it at submit (``RequestTooDeep``) instead.
MAX_REQUEST_DEPTH: Final = 100


class MalformedMessage(ValueError):
    """A message that is not valid JSON of the expected kind and version.

    ``reason`` names what is wrong in one word, for dead-letter headers, metrics and the
    Error a task ends in: ``NotUtf8``, ``NotJson``, ``TooDeep``, ``NotAnObject``,
    ``UnknownVersion``, ``WrongKind`` or ``InvalidFields``.
    """

    def __init__(self, message: str, reason: str = "InvalidFields") -> None:
        super().__init__(message)
        self.reason = reason


def decode(model: type[M], body: bytes) -> M:
    """Parse a message body, raising :class:`MalformedMessage` on anything invalid."""
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMessage(
            f"not a valid {model.__name__}: not UTF-8 ({exc})", "NotUtf8"
        ) from exc
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise MalformedMessage(
            f"not a valid {model.__name__}: {_first_lines(exc)}", _malformed_reason(exc)
        ) from exc
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage(f"not a valid {model.__name__}: {exc}", "NotJson") from exc


def _malformed_reason(exc: ValidationError) -> str:
    """What a validation error means, in one word (see :class:`MalformedMessage`)."""
    errors = exc.errors()
    first = errors[0] if errors else {"type": "", "loc": (), "msg": ""}
    if first["type"] == "json_invalid":
        return "TooDeep" if "recursion limit" in str(first["msg"]) else "NotJson"
    if first["type"] == "model_type" and not first["loc"]:
        return "NotAnObject"
    if tuple(first["loc"]) == ("v",):
        return "UnknownVersion"
    if tuple(first["loc"]) == ("kind",):
        return "WrongKind"
    return "InvalidFields"


def _first_lines(exc: ValidationError, limit: int = 600) -> str:
    text = str(exc)
    return text if len(text) <= limit else text[:limit] + "…"


def json_depth(value: Any) -> int:
    """How deep a JSON value nests (a scalar is 0), without recursion: safe on any input."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth + 1)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def encode(message: _Message) -> bytes:
    return message.model_dump_json(exclude_none=False).encode()
