"""An AsyncTask object as the row the archive keeps: pure, so it is tested without a database.

The payloads (spec, request, result, error, status, annotations) are stored as ``jsonb``
where PostgreSQL takes them, which is almost always. ``jsonb`` refuses two things JSON
allows: the character U+0000 (``\\u0000``) and an unpaired surrogate (``\\ud800``); and very
deep nesting costs its parser stack. Such a payload is stored instead, whole, as its JSON
text (ASCII, every special character escaped) in the column's ``*_text`` twin, which
:func:`decode` reads back to the very same value.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from asynctask_operator.archive.schema import LABELS_KEY_MAX
from asynctask_operator.status import parse_phase, parse_time

#: The annotation the gateway records the creating user in.
CREATED_BY = "asynctask.dev/created-by"
#: Deeper payloads are stored as text (jsonb's parser recurses once per level).
JSONB_MAX_DEPTH = 200
#: The payload columns: each is ``<name> jsonb`` with a ``<name>_text text`` twin.
PAYLOADS = ("spec", "request", "result", "error", "status", "annotations")


def depth(value: Any) -> int:
    """How deeply ``value`` nests (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = (
            item.values() if isinstance(item, dict) else item if isinstance(item, list) else ()
        )
        for child in children:
            deepest = max(deepest, level)
            stack.append((child, level + 1))
        if isinstance(item, dict | list) and not item:
            deepest = max(deepest, level)
    return deepest


def encode(value: Any) -> tuple[str | None, str | None]:
    """``(jsonb, text)``: the JSON of ``value`` for its ``jsonb`` column, or (when jsonb
    would refuse it or its depth) for its ``*_text`` twin; ``(None, None)`` for None."""
    if value is None:
        return None, None
    exact = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    if "\\u0000" in exact or depth(value) > JSONB_MAX_DEPTH or not _utf8(value):
        return None, exact
    return exact, None


def _utf8(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError:  # an unpaired surrogate
        return False
    return True


def decode(jsonb: Any, text: str | None) -> Any:
    """The value stored by :func:`encode`, as read back (psycopg parses ``jsonb``)."""
    return json.loads(text) if text is not None else jsonb


@dataclass(frozen=True)
class ArchiveRecord:
    """One row of ``asynctask_history``: a terminal task, whole."""

    uid: str
    finished_at: datetime
    namespace: str
    name: str
    queue: str | None
    priority: int | None
    phase: str
    reason: str | None
    message: str | None
    creator: str | None
    worker: str | None
    attempts: int | None
    labels: str  # jsonb (label keys and values are plain text by Kubernetes' validation)
    labels_key: str | None  # jsonb: the same labels if short (schema.LABELS_KEY_MAX), else None
    created_at: datetime | None
    queued_at: datetime | None
    scheduled_at: datetime | None
    started_at: datetime | None
    last_update_at: datetime | None
    spec: str | None
    spec_text: str | None
    request: str | None
    request_text: str | None
    result: str | None
    result_text: str | None
    error: str | None
    error_text: str | None
    status: str | None
    status_text: str | None
    annotations: str | None
    annotations_text: str | None

    def row(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


COLUMNS = tuple(f.name for f in fields(ArchiveRecord))


def labels_key(labels: str) -> str | None:
    """The labels' copy for the keyset index: the same JSON when its UTF-8 text is at most
    :data:`LABELS_KEY_MAX` bytes, else None (the reader then checks the full labels)."""
    return labels if len(labels.encode()) <= LABELS_KEY_MAX else None


def terminal(body: dict[str, Any]) -> bool:
    """The object's phase is terminal: it is archived."""
    phase = parse_phase((body.get("status") or {}).get("phase"))
    return phase is not None and phase.terminal


def _time(raw: object) -> datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        return None


def _int(raw: object) -> int | None:
    return raw if isinstance(raw, int) and not isinstance(raw, bool) else None


def _str(raw: object) -> str | None:
    return raw if isinstance(raw, str) else None


def finished_at(body: dict[str, Any]) -> datetime | None:
    """When the task finished: ``completionTime``, else its last status time, else its
    creation (all stable once terminal, so a row is always upserted into one partition)."""
    meta, status = body.get("metadata") or {}, body.get("status") or {}
    for raw in (status.get("completionTime"), status.get("lastUpdateTime")):
        if (at := _time(raw)) is not None:
            return at
    return _time(meta.get("creationTimestamp"))


def record_of(body: dict[str, Any]) -> ArchiveRecord | None:
    """The row of a terminal task, or None (not terminal, or no uid or time to key it by)."""
    meta = body.get("metadata") or {}
    spec, status = dict(body.get("spec") or {}), dict(body.get("status") or {})
    at, uid = finished_at(body), meta.get("uid")
    if not terminal(body) or at is None or not isinstance(uid, str) or not uid:
        return None
    annotations = meta.get("annotations") or {}
    request = spec.pop("request", None)
    result, error = status.pop("result", None), status.pop("error", None)
    reason = status.get("reason")
    if reason is None and isinstance(error, dict):
        reason = error.get("reason")
    payloads = {
        "spec": encode(spec),
        "request": encode(request),
        "result": encode(result),
        "error": encode(error),
        "status": encode(status),
        "annotations": encode(annotations or None),
    }
    labels = json.dumps(meta.get("labels") or {}, separators=(",", ":"))
    return ArchiveRecord(
        uid=uid,
        finished_at=at,
        namespace=str(meta.get("namespace") or ""),
        name=str(meta.get("name") or ""),
        queue=_str(spec.get("queue")),
        priority=_int(spec.get("priority")),
        phase=str(status["phase"]),
        reason=_str(reason),
        message=_str(status.get("message")),
        creator=_str(annotations.get(CREATED_BY)),
        worker=_str(status.get("worker")),
        attempts=_int(status.get("attempts")),
        labels=labels,
        labels_key=labels_key(labels),
        created_at=_time(meta.get("creationTimestamp")),
        queued_at=_time(status.get("queuedTime")),
        scheduled_at=_time(status.get("scheduledTime")),
        started_at=_time(status.get("startTime")),
        last_update_at=_time(status.get("lastUpdateTime")),
        **{
            column: part
            for name, pair in payloads.items()
            for column, part in zip((name, f"{name}_text"), pair, strict=True)
        },
    )
