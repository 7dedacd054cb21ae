"""The CloudEvents a webhook receives: one per phase change of a task (and opt-in progress).

Pure: building an event touches no network. Ids are deterministic (the same change of the
same task always gets the same id), so receivers can drop duplicates of an at-least-once
delivery. The transport is :mod:`webhooks`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from asynctask_operator.apiserver.resource import GROUP, PLURAL, VERSION
from asynctask_operator.status import phase_of, rfc3339
from asynctask_worker.messages import Phase, TaskRef

CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
TYPE_PREFIX = "dev.asynctask.task."
PROGRESS_TYPE = TYPE_PREFIX + "progress"


def event_attempt(status: Mapping[str, Any]) -> int:
    """The attempt a status is about: the next one while a retry waits, else the latest."""
    if phase_of(dict(status)) is Phase.PENDING and status.get("nextAttempt"):
        return int(status["nextAttempt"])
    return max(int(status.get("attempts") or 0), 1)


def event_id(
    uid: str, attempt: int, phase: Phase, progress: int | None = None, message: str | None = None
) -> str:
    """Deterministic: the same change of the same task always gets the same id."""
    if progress is None:
        return f"{uid}.{attempt}.{phase.value.lower()}"
    digest = hashlib.sha256((message or "").encode()).hexdigest()[:8]
    return f"{uid}.{attempt}.progress.{progress}.{digest}"


def build_event(
    ref: TaskRef,
    status: Mapping[str, Any],
    *,
    progress_event: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """A CloudEvents 1.0 event (structured mode) describing ``status``."""
    phase = phase_of(dict(status))
    if phase is None:
        raise ValueError("the status has no phase")
    attempt = event_attempt(status)
    progress = int(status.get("progress") or 0)
    message = status.get("message")
    return {
        "specversion": "1.0",
        "id": event_id(
            ref.uid,
            attempt,
            phase,
            progress if progress_event else None,
            message if progress_event else None,
        ),
        "source": f"/apis/{GROUP}/{VERSION}/namespaces/{ref.namespace}/{PLURAL}/{ref.name}",
        "type": PROGRESS_TYPE if progress_event else TYPE_PREFIX + phase.value.lower(),
        "subject": ref.name,
        "time": status.get("lastUpdateTime") or rfc3339(now or datetime.now(UTC)),
        "datacontenttype": "application/json",
        "data": {
            "name": ref.name,
            "namespace": ref.namespace,
            "uid": ref.uid,
            "phase": phase.value,
            "attempt": attempt,
            "attempts": int(status.get("attempts") or 0),
            "progress": progress,
            "message": message,
            "result": status.get("result"),
            "resultRef": status.get("resultRef"),  # a result in object storage
            "error": status.get("error"),
            "lastError": status.get("lastError"),
            "nextAttemptTime": status.get("nextAttemptTime"),
        },
    }


def encode_event(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def event_for(
    ref: TaskRef,
    status: Mapping[str, Any],
    previous: Mapping[str, Any] | None,
    *,
    include_progress: bool = False,
) -> dict[str, Any] | None:
    """The event that the change from ``previous`` to ``status`` calls for, if any.

    A phase change (or a new attempt) always gets one; a change of progress or message while
    Processing only if the webhook opted in. ``previous`` None is unknown: a phase change.
    """
    phase = phase_of(dict(status))
    if phase is None:
        return None
    before = previous or {}
    if phase is not phase_of(dict(before)) or event_attempt(status) != event_attempt(before):
        return build_event(ref, status)
    if (
        include_progress
        and phase is Phase.PROCESSING
        and (status.get("progress"), status.get("message"))
        != (before.get("progress"), before.get("message"))
    ):
        return build_event(ref, status, progress_event=True)
    return None
