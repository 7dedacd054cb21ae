"""The parts of the OpenAPI document that are not a route: the schemas of bodies, answers
and events, the parameters, and the problem types each status stands for (pure data, built
from the patterns, models and limits the handlers use)."""

from __future__ import annotations

from typing import Any

from asynctask_gateway import patterns
from asynctask_gateway.listing import MAX_LIMIT
from asynctask_gateway.problems import TYPE_BASE
from asynctask_gateway.submissions import MAX_BATCH
from asynctask_worker.messages import Phase

REF = "#/components/schemas/{model}"
PHASES = [phase.value for phase in Phase]


def ref(model: str) -> dict[str, str]:
    return {"$ref": REF.format(model=model)}


PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details. `reason` is the problem type's last segment "
    "(the apiserver's reason when its refusal is passed through).",
    "properties": {
        "type": {"type": "string", "format": "uri", "pattern": f"^{TYPE_BASE}"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "reason": {"type": "string"},
        "causes": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "reason": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "detail", "reason"],
}
TASK_LIST = {
    "type": "object",
    "required": ["items", "continue"],
    "properties": {
        "items": {"type": "array", "items": ref("TaskView"), "maxItems": MAX_LIMIT},
        "continue": {
            "type": ["string", "null"],
            "pattern": patterns.CONTINUE,
            "description": "Pass as ?continue= for the next page; null on the last.",
        },
    },
}
SCHEDULE_LIST = {
    "type": "object",
    "required": ["items"],
    "description": "Every schedule of the namespace, by name.",
    "properties": {"items": {"type": "array", "items": ref("ScheduleView")}},
}
QUEUE_LIST = {
    "type": "object",
    "required": ["items"],
    "description": "Every AsyncQueue of the cluster, by name.",
    "properties": {"items": {"type": "array", "items": ref("QueueView")}},
}
BATCH = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tasks"],
    "description": "Each item is submitted on its own, as a TaskRequest POSTed to .../tasks "
    "would be (without Idempotency-Key or Prefer). An item that is not a valid TaskRequest "
    "(even one that is not an object) does not fail the batch: its own answer is a 422 "
    "problem, and the other items are submitted. So any JSON value is accepted as an item.",
    "properties": {
        "tasks": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BATCH,
            "items": {"description": "A TaskRequest (anything else: that item's 422)."},
        }
    },
}
BATCH_ITEM_CREATED = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "location", "task"],
    "properties": {
        "status": {"const": 202},
        "location": {"type": "string", "description": "The task's URL path."},
        "task": ref("TaskView"),
    },
}
BATCH_ITEM_REFUSED = {
    "type": "object",
    "additionalProperties": False,
    "required": ["status", "problem"],
    "properties": {
        "status": {"type": "integer", "enum": [400, 404, 409, 410, 413, 422, 429, 502]},
        "problem": ref("Problem"),
    },
}
BATCH_ANSWER = {
    "type": "object",
    "required": ["items"],
    "description": "One answer per item of the batch, in the same order: 202 with the task, "
    "or the item's problem (the status it would have had alone). The batch itself is 200.",
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BATCH,
            "items": {"oneOf": [ref("BatchItemCreated"), ref("BatchItemRefused")]},
        }
    },
}
TASK_DETAIL = {
    "type": "object",
    "description": "A task page's record.",
    "required": ["task", "spec", "status", "labels", "annotations"],
    "properties": {
        "task": ref("TaskView"),
        "spec": {"type": "object", "description": "The spec as written, with the request."},
        "status": {
            "type": "object",
            "description": "conditions, webhook, lastError, "
            "nextAttemptTime, worker, queuedTime, observedGeneration (when set).",
        },
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _event(names: list[str], data: dict[str, Any], with_id: bool) -> dict[str, Any]:
    """One server-sent event: ``data`` is JSON text, its schema given as ``contentSchema``."""
    event: dict[str, Any] = {
        "type": "object",
        "required": ["event", "data", *(["id"] if with_id else [])],
        "properties": {
            "event": {"enum": names},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
            "id": {"type": "string", "description": "The task's resourceVersion."},
        },
    }
    return event


TASK_EVENT = {
    "description": "One event of a task's stream (text/event-stream): `retry: 3000` first, "
    "then `id:` the resourceVersion, `event:` the phase when it changed (the first event "
    "is always the phase) or `progress`, `data:` the view as JSON; the stream ends after "
    "the terminal phase, or with `deleted` (data: a Problem, no id) when the task is "
    "deleted. `: keepalive` comments keep a quiet stream open.",
    "oneOf": [
        _event([*PHASES, "progress"], ref("TaskView"), True),
        _event(["deleted"], ref("Problem"), False),
    ],
}
COUNTS = {
    "type": "object",
    "required": ["total", "phases", "queues"],
    "properties": {
        "total": {"type": "integer", "minimum": 0},
        "phases": {"type": "object", "additionalProperties": {"type": "integer"}},
        "queues": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {"type": "integer"},
            },
        },
    },
}
NAMESPACE_EVENT = {
    "description": "One event of the namespace stream (text/event-stream): `retry: 3000` "
    "first, then `counts` (first, and whenever a count moves), `task` (id: the "
    "resourceVersion, data: the view) and `deleted` (data: namespace and name); it never "
    "ends by itself.",
    "oneOf": [
        _event(["counts"], ref("Counts"), False),
        _event(["task"], ref("TaskView"), True),
        _event(
            ["deleted"],
            {
                "type": "object",
                "required": ["namespace", "name"],
                "properties": {"namespace": {"type": "string"}, "name": {"type": "string"}},
            },
            False,
        ),
    ],
}

RESULT_URL = {
    "type": "object",
    "description": "A presigned GET of a stored result, for callers who reach the store.",
    "required": ["url", "expiresAt", "ref"],
    "properties": {
        "url": {"type": "string", "description": "GET it within expiresAt (no token)."},
        "expiresAt": {"type": "string", "format": "date-time"},
        "ref": ref("PayloadRef"),
    },
}
