"""The OpenAPI 3.1 document of the gateway, built from the route table, the models and the
patterns the validators use (so it cannot drift from them); ``python -m
asynctask_gateway.openapi`` prints it, and the checked-in docs/openapi.json is that output (a
unit test compares them; tests/e2e/test_openapi_conformance.py runs Schemathesis with it)."""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from asynctask_gateway import openapi_schemas as parts
from asynctask_gateway import patterns
from asynctask_gateway.history import MAX_TEXT
from asynctask_gateway.listing import DEFAULT_LIMIT, MAX_LIMIT
from asynctask_gateway.openapi_schemas import PHASES, ref
from asynctask_gateway.routes import API_ROUTES, Route
from asynctask_gateway.schedule_requests import ScheduleRequest
from asynctask_gateway.settings import MAX_WAIT_SECONDS
from asynctask_gateway.submissions import TaskRequest
from asynctask_gateway.ui import CONTENT_TYPES, FILES
from asynctask_worker.bulk import BulkAnswer
from asynctask_worker.resource_views import QueueView, ScheduleView
from asynctask_worker.views import TaskView

#: What every API route may answer besides its own codes (Route.answers).
COMMON = (401, 403, 404, 429, 502, 503)
#: The problem types (``reason``) behind each status, and when.
PROBLEMS = {
    400: "BadRequest (a body that is not JSON, a query parameter or header that does not "
    "match its schema), InvalidName (the path's name is not a DNS-1123 subdomain), "
    "SelectorRequired (a bulk action without a labelSelector term: it would act on every "
    "task), or the apiserver's own 400",
    401: "Unauthorized: no bearer token, or one the TokenReview did not accept",
    403: "Forbidden: the SubjectAccessReview denied a verb this route needs",
    404: "NotFound (no such task, live or archived, schedule or queue), NamespaceNotServed "
    "(the namespace is not one this gateway serves), ArchiveNotConfigured (the history "
    "routes of a gateway without a history archive)",
    409: "AlreadyExists (create: the name is taken), AlreadyFinished (cancel: the task has ended)",
    410: "the apiserver's Gone",
    413: "RequestEntityTooLarge (the body), RequestTooLarge (spec.request as JSON)",
    422: "Invalid (a field does not fit: causes name it; also the apiserver's refusals), "
    "IdempotencyKeyReused (the key created a task with another body)",
    429: "TooManyRequests: the caller's open streams or waits (Retry-After), or the "
    "apiserver's throttling",
    502: "GatewayForbidden (the gateway's own ServiceAccount was refused), or another "
    "unexpected answer of the apiserver (its reason)",
    503: "AuthorizationUnavailable: the SubjectAccessReview could not be made; "
    "ArchiveUnavailable: the history archive could not be read",
}
SUCCESS = {
    200: "OK",
    201: "Created: the schedule's view",
    202: "Accepted: the task is created (or cancelled); the view",
    204: "No Content",
    304: "Not Modified: If-None-Match names the current resourceVersion",
}
STREAMS = {"streamTask": "TaskEvent", "watchTasks": "NamespaceEvent"}
BODIES = {
    "listTasks": "TaskList",
    "createTasks": "BatchAnswer",
    "getTaskDetail": "TaskDetail",
    "cancelTasks": "BulkAnswer",
    "deleteTasks": "BulkAnswer",
    "listSchedules": "ScheduleList",
    "listQueues": "QueueList",
    "listHistory": "TaskList",
}
#: Answers with a schedule's or a queue's view (the rest answer a task's view).
VIEWS = {
    "createSchedule": "ScheduleView",
    "getSchedule": "ScheduleView",
    "suspendSchedule": "ScheduleView",
    "resumeSchedule": "ScheduleView",
    "getQueue": "QueueView",
    "pauseQueue": "QueueView",
    "resumeQueue": "QueueView",
}
#: Where a task's URL leads from an answer that holds its view (OpenAPI links: the
#: stateful tests follow them).
NEXT = {
    "createTask": ("getTask", "waitTask", "cancelTask", "deleteTask", "getTaskDetail"),
    "getTask": ("waitTask", "cancelTask", "deleteTask", "streamTask"),
    "cancelTask": ("getTask", "deleteTask"),
    "createSchedule": (
        "getSchedule",
        "suspendSchedule",
        "resumeSchedule",
        "triggerSchedule",
        "deleteSchedule",
    ),
    "triggerSchedule": ("getTask", "cancelTask", "deleteTask"),
    "suspendSchedule": ("resumeSchedule", "getSchedule"),
}
#: Where a queue's name leads (no namespace: AsyncQueue is cluster-scoped).
QUEUE_NEXT = {"getQueue": ("pauseQueue", "resumeQueue"), "pauseQueue": ("resumeQueue",)}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [
            (TaskView, "serialization"),
            (TaskRequest, "validation"),
            (BulkAnswer, "serialization"),
            (ScheduleView, "serialization"),
            (ScheduleRequest, "validation"),
            (QueueView, "serialization"),
        ],
        by_alias=True,
        ref_template=parts.REF,
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas.update(
        Problem=parts.PROBLEM,
        TaskList=parts.TASK_LIST,
        Batch=parts.BATCH,
        BatchAnswer=parts.BATCH_ANSWER,
        BatchItemCreated=parts.BATCH_ITEM_CREATED,
        BatchItemRefused=parts.BATCH_ITEM_REFUSED,
        TaskDetail=parts.TASK_DETAIL,
        TaskEvent=parts.TASK_EVENT,
        NamespaceEvent=parts.NAMESPACE_EVENT,
        Counts=parts.COUNTS,
        ScheduleList=parts.SCHEDULE_LIST,
        QueueList=parts.QUEUE_LIST,
    )
    return schemas


def _string(pattern: str, max_length: int | None = None, **more: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string", "pattern": pattern, **more}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


QUERY: dict[str, dict[str, Any]] = {
    "queue": {"schema": {"type": "string"}, "description": "Only tasks of this queue."},
    "phase": {"schema": {"enum": PHASES}, "description": "Only tasks in this phase."},
    "labelSelector": {
        "schema": _string(patterns.LABEL_SELECTOR),
        "description": "Kubernetes' label selector (a=b, a!=b, a, !a, a in (x,y), "
        "a notin (x,y); comma: and).",
    },
    "limit": {
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_LIMIT,
            "default": DEFAULT_LIMIT,
        },
        "description": "Tasks per page.",
    },
    "continue": {
        "schema": _string(patterns.CONTINUE),
        "description": "The previous page's `continue`: the page after it.",
    },
    "creator": {
        "schema": {"type": "string", "maxLength": MAX_TEXT},
        "description": "Only tasks created by this user (the gateway's created-by).",
    },
    "since": {
        "schema": _string(patterns.RFC3339_TIME),
        "description": "Only tasks finished at or after this RFC 3339 time.",
    },
    "until": {
        "schema": _string(patterns.RFC3339_TIME),
        "description": "Only tasks finished before this RFC 3339 time (not before since).",
    },
    "archived": {
        "schema": {"type": "boolean", "default": False},
        "description": "true: the history archive's record only (the latest archived run of "
        "that name, or the run with that uid), even while the task is live; 404 "
        "ArchiveNotConfigured without an archive.",
    },
    "timeout": {
        "schema": _string(patterns.DURATION),
        "description": "30s, 1.5s, 500ms, 1m or seconds; default 30s, at most "
        f"{MAX_WAIT_SECONDS:g}s (longer is shortened).",
    },
}
HEADERS: dict[str, dict[str, Any]] = {
    "Prefer": {
        "schema": {"type": "string"},
        "description": "RFC 7240; `wait=N` waits up to N seconds (at most "
        f"{MAX_WAIT_SECONDS:g}) for the task to end, then answers 200 with the final "
        "view; other preferences are ignored.",
    },
    "Idempotency-Key": {
        "schema": _string(patterns.IDEMPOTENCY_KEY, 257),
        "description": "1 to 255 printable ASCII characters, bare or as a structured-field "
        'string ("..."): a retry with the same key and body answers the task the first '
        "call created; the same key with another body is 422 IdempotencyKeyReused.",
    },
    "If-None-Match": {"schema": {"type": "string"}, "description": "ETags (304 on a match)."},
    "Last-Event-ID": {
        "schema": {"type": "string"},
        "description": "The last resourceVersion seen: resumes without repeating it.",
    },
}
ROUTE_QUERIES = {
    "listTasks": ("queue", "phase", "labelSelector", "limit", "continue"),
    "getTask": ("archived",),
    "getTaskDetail": ("archived",),
    "waitTask": ("timeout",),
    "watchTasks": ("queue", "labelSelector"),
    "cancelTasks": ("labelSelector", "limit", "continue"),
    "deleteTasks": ("labelSelector", "limit", "continue"),
    "listHistory": (
        "queue",
        "phase",
        "labelSelector",
        "creator",
        "since",
        "until",
        "limit",
        "continue",
    ),
}
#: A bulk action's labelSelector: required, with at least one term.
BULK_SELECTOR = {
    "required": True,
    "schema": _string(patterns.BULK_SELECTOR),
    "description": "The tasks to act on: Kubernetes' label selector, with at least one term "
    "(an empty one would select every task and is refused: 400 SelectorRequired).",
}
ROUTE_QUERY_OVERRIDES = {
    "cancelTasks": {"labelSelector": BULK_SELECTOR},
    "deleteTasks": {"labelSelector": BULK_SELECTOR},
}
ROUTE_HEADERS = {
    "createTask": ("Prefer", "Idempotency-Key"),
    "getTask": ("If-None-Match",),
    "streamTask": ("Last-Event-ID",),
}
PATH_PARAMS = {
    "namespace": _string(patterns.NAMESPACE_PATTERN, patterns.MAX_NAMESPACE),
    "name": _string(patterns.NAME_PATTERN, patterns.MAX_NAME),
}


def _parameters(route: Route) -> list[dict[str, Any]]:
    names = [part.strip("{}").split("}")[0] for part in route.path.split("/") if "{" in part]
    params = [{"name": n, "in": "path", "required": True, "schema": PATH_PARAMS[n]} for n in names]
    overrides = ROUTE_QUERY_OVERRIDES.get(route.name, {})
    params += [
        {"name": q, "in": "query", **overrides.get(q, QUERY[q])}
        for q in ROUTE_QUERIES.get(route.name, ())
    ]
    params += [{"name": h, "in": "header", **HEADERS[h]} for h in ROUTE_HEADERS.get(route.name, ())]
    return params


def _header(description: str, required: bool = False, **schema: Any) -> dict[str, Any]:
    return {
        "description": description,
        "required": required,
        "schema": {"type": "string", **schema},
    }


def _view_headers(route: Route) -> dict[str, Any]:
    headers = {"ETag": _header("The resourceVersion, quoted.", True)}
    if route.name not in VIEWS:
        headers["Retry-After"] = _header("Seconds before polling again (while not done).")
    if route.name in ("createTask", "resubmitTask", "triggerSchedule"):
        headers["Location"] = _header("The task's URL path.", True)
    if route.name in ("createTask", "resubmitTask"):
        headers["Preference-Applied"] = _header("wait=N, when Prefer: wait was applied.")
        headers["Location"] = _header("The task's URL path.", True)
    if route.name == "createSchedule":
        headers["Location"] = _header("The schedule's URL path.", True)
        headers["Preference-Applied"] = _header("wait=N, when Prefer: wait was applied.")
    return headers


def _answer(route: Route, code: int) -> dict[str, Any]:
    if code >= 400:
        answer: dict[str, Any] = {
            "description": PROBLEMS[code],
            "content": {"application/problem+json": {"schema": ref("Problem")}},
        }
        if code == 401:
            answer["headers"] = {"WWW-Authenticate": _header('Bearer realm="asynctask"', True)}
        if code == 429:
            answer["headers"] = {"Retry-After": _header("Seconds to wait.")}
        return answer
    answer = {"description": SUCCESS[code]}
    if code == 304:
        answer["headers"] = {"ETag": _header("The resourceVersion, quoted.", True)}
    if code in (204, 304):
        return answer
    if route.name in STREAMS:
        schema = ref(STREAMS[route.name])
        answer["content"] = {"text/event-stream": {"schema": schema}}
        return answer
    model = BODIES.get(route.name) or VIEWS.get(route.name, "TaskView")
    answer["content"] = {"application/json": {"schema": ref(model)}}
    if route.name not in BODIES:
        answer["headers"] = _view_headers(route)
    answer.update(_links(route))
    return answer


def _links(route: Route) -> dict[str, Any]:
    """OpenAPI links from an answer to the routes its object's name leads to."""
    if route.name in NEXT:
        params = {"namespace": "$response.body#/namespace", "name": "$response.body#/name"}
        targets = NEXT[route.name]
    elif route.name in QUEUE_NEXT:
        params, targets = {"name": "$response.body#/name"}, QUEUE_NEXT[route.name]
    else:
        return {}
    return {"links": {t: {"operationId": t, "parameters": params} for t in targets}}


def _operation(route: Route) -> dict[str, Any]:
    codes = sorted({*route.answers, *COMMON})
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "parameters": _parameters(route),
        "responses": {str(code): _answer(route, code) for code in codes},
        "x-kubernetes-verbs": list(route.verbs),
        "x-kubernetes-resource": route.resource,
    }
    if route.also:
        op["x-kubernetes-also"] = [{"resource": r, "verb": v} for r, v in route.also]
    if route.body != "none":
        model = {"task": "TaskRequest", "batch": "Batch", "schedule": "ScheduleRequest"}[route.body]
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(model)}},
        }
    return op


def _public(operation_id: str, summary: str, answers: dict[str, Any]) -> dict[str, Any]:
    return {
        "get": {
            "operationId": operation_id,
            "summary": summary,
            "security": [],
            "responses": answers,
        }
    }


def _text(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _public_paths() -> dict[str, Any]:
    not_found = {
        "description": "NotFound: no such file in the dashboard",
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }
    files = {
        ctype.split(";")[0]: {"schema": {"type": "string"}} for ctype in CONTENT_TYPES.values()
    }
    ui_file = {"description": "The file", "content": files}
    return {
        "/healthz": _public("healthz", "The process is up.", {"200": _text("ok")}),
        "/readyz": _public(
            "readyz",
            "The watch cache has synced.",
            {"200": _text("ok"), "503": _text("the watch cache has not synced yet")},
        ),
        "/metrics": _public("metrics", "Prometheus metrics.", {"200": _text("exposition")}),
        "/openapi.json": _public(
            "openapi_json",
            "This document.",
            {"200": {"description": "OK", "content": {"application/json": {"schema": {}}}}},
        ),
        "/ui": _public(
            "dashboardRedirect",
            "The web dashboard: redirects to /ui/.",
            {"301": {"description": "To /ui/", "headers": {"Location": _header("/ui/", True)}}},
        ),
        "/ui/": _public(
            "dashboard",
            "The web dashboard's page (static; no token, no data).",
            {"200": {"description": "index.html", "content": {"text/html": {}}}},
        ),
        "/ui/{file}": {
            "get": {
                **_public("dashboardFile", "A static file of the dashboard.", {})["get"],
                "parameters": [
                    {
                        "name": "file",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string", "enum": sorted(FILES)},
                    }
                ],
                "responses": {"200": ui_file, "404": not_found},
            }
        },
    }


def build_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in API_ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    paths.update(_public_paths())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AsyncTask gateway",
            "version": "v1",
            "description": "Submit, poll, long-poll, stream and cancel AsyncTasks; create, "
            "suspend, resume and trigger AsyncTaskSchedules; pause and resume AsyncQueues. "
            "Authenticate with a Kubernetes bearer token; each call is authorized by a "
            "SubjectAccessReview (before anything about the namespace or the object is "
            "looked at) on the operation's x-kubernetes-resource for each of its "
            "x-kubernetes-verbs, plus x-kubernetes-also: asynctasks and asynctaskschedules "
            "in the namespace, asyncqueues cluster-wide. Errors are RFC 9457 problems.",
        },
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": _schemas(),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> str:
    return json.dumps(build_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
