"""The task view: what an HTTP client (or a program) needs to know about one AsyncTask.

One pure function, :func:`task_view`, builds it from an object's ``metadata`` and ``.status``;
the HTTP gateway answers with it and a Python client can read it back with
:class:`TaskView` without depending on the operator (this module needs pydantic only).
The names follow the CRD's status fields, so a view reads like ``kubectl get -o yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from asynctask_worker.messages import Phase
from asynctask_worker.payloads import PayloadRef


class TaskError(BaseModel):
    """Why a task did not succeed (``status.error``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    reason: str | None = None
    message: str | None = None
    traceback: str | None = None


class TaskView(BaseModel):
    """One task as clients see it. ``done`` is true once the phase is terminal (it never
    changes again); ``resourceVersion`` identifies this exact state (an HTTP ETag)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: str
    namespace: str
    uid: str = ""
    phase: Phase = Field(
        Phase.PENDING,
        description=(
            "Pending (also before the operator has queued it), Processing, or a terminal phase."
        ),
    )
    done: bool = False
    progress: int = 0
    message: str | None = None
    result: Any = None
    error: TaskError | None = None
    attempts: int = 0
    created_at: str | None = Field(None, alias="createdAt")
    start_time: str | None = Field(None, alias="startTime")
    completion_time: str | None = Field(None, alias="completionTime")
    resource_version: str = Field("", alias="resourceVersion")
    queue: str = Field("", description="spec.queue: the worker pool (task type).")
    not_before: str | None = Field(
        None,
        alias="notBefore",
        description="spec.notBefore: the earliest time the task is queued, if it was delayed "
        "(while it waits: Pending, message 'scheduled for <time>').",
    )
    priority: int = Field(
        0, description="spec.priority: -100..100, higher first on a queue with a policy."
    )
    reason: str | None = Field(
        None,
        description="status.reason: why a Pending task is held (Scheduled, Paused, "
        "ConcurrencyLimit, RateLimited, WaitingForTurn), if it is.",
    )
    result_ref: PayloadRef | None = Field(
        None,
        alias="resultRef",
        description="status.resultRef: the result stored in object storage (Succeeded only; "
        "result is then null): GET …/result streams it, GET …/result/url gives a short-lived "
        "URL (docs/payloads.md).",
    )
    request_ref: PayloadRef | None = Field(
        None,
        alias="requestRef",
        description="spec.requestRef: the request stored in object storage, if it was offloaded.",
    )
    archived: bool = Field(
        False,
        description="Read from the history archive: the task is no longer live (its "
        "TTL or a user deleted it); false for a live task.",
    )

    def to_json(self) -> dict[str, Any]:
        """The wire form (camelCase names, every field present)."""
        return self.model_dump(mode="json", by_alias=True)


def phase_of(status: Mapping[str, Any]) -> Phase:
    """The stored phase; a task the operator has not queued yet (no or unknown phase) is
    Pending: it waits, like a queued one, and clients need no extra state for it."""
    try:
        return Phase(status.get("phase") or Phase.PENDING)
    except ValueError:
        return Phase.PENDING


def task_view(obj: Mapping[str, Any]) -> TaskView:
    """The view of one AsyncTask object (a dict as the Kubernetes API returns it)."""
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    spec: Mapping[str, Any] = obj.get("spec") or {}
    status: Mapping[str, Any] = obj.get("status") or {}
    phase = phase_of(status)
    error = status.get("error")
    return TaskView(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        phase=phase,
        done=phase.terminal,
        progress=int(status.get("progress") or 0),
        message=status.get("message"),
        result=status.get("result") if phase is Phase.SUCCEEDED else None,
        error=TaskError.model_validate(error) if isinstance(error, Mapping) else None,
        attempts=int(status.get("attempts") or 0),
        createdAt=meta.get("creationTimestamp"),
        startTime=status.get("startTime"),
        completionTime=status.get("completionTime"),
        resourceVersion=str(meta.get("resourceVersion", "")),
        queue=str(spec.get("queue") or ""),
        notBefore=spec.get("notBefore"),
        priority=_priority(spec.get("priority")),
        reason=status.get("reason") if isinstance(status.get("reason"), str) else None,
        resultRef=_ref(status.get("resultRef")) if phase is Phase.SUCCEEDED else None,
        requestRef=_ref(spec.get("requestRef")),
    )


def _ref(value: Any) -> PayloadRef | None:
    """A stored object's reference as the object holds it; None when absent or unreadable
    (the CRD's schema checked it; a view never fails on it)."""
    if not isinstance(value, Mapping):
        return None
    try:
        return PayloadRef.model_validate(value)
    except ValueError:
        return None


def _priority(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
