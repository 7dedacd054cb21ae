"""The OpenAPI 3.1 document of the gateway, built from the route table and the models (so it
cannot drift from them); ``python -m asynctask_gateway.openapi`` prints it, and the checked-in
docs/openapi.json is that output (a unit test compares them)."""

from __future__ import annotations

import json
from typing import Any

from pydantic.json_schema import models_json_schema

from asynctask_gateway.routes import API_ROUTES, PUBLIC_PATHS, UI_PATHS, Route
from asynctask_gateway.submissions import MAX_BATCH, TaskRequest
from asynctask_worker.views import TaskView

REF = "#/components/schemas/{model}"
PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details.",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
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
    "required": ["type", "title", "status", "detail"],
}
TASK_LIST = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": {"$ref": REF.format(model="TaskView")}},
        "continue": {
            "type": ["string", "null"],
            "description": "Pass as ?continue= for the next page; null on the last.",
        },
    },
}
BATCH = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tasks"],
    "properties": {
        "tasks": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_BATCH,
            "items": {"$ref": REF.format(model="TaskRequest")},
        }
    },
}
TASK_DETAIL = {
    "type": "object",
    "description": "A task page's record.",
    "properties": {
        "task": {"$ref": REF.format(model="TaskView")},
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
BATCH_ANSWER = {
    "type": "object",
    "properties": {
        "items": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "status": {"type": "integer"},
                    "location": {"type": "string"},
                    "task": {"$ref": REF.format(model="TaskView")},
                    "problem": {"$ref": REF.format(model="Problem")},
                },
            },
        }
    },
}


def _schemas() -> dict[str, Any]:
    _, top = models_json_schema(
        [(TaskView, "serialization"), (TaskRequest, "validation")], by_alias=True, ref_template=REF
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    schemas.update(
        Problem=PROBLEM,
        TaskList=TASK_LIST,
        Batch=BATCH,
        BatchAnswer=BATCH_ANSWER,
        TaskDetail=TASK_DETAIL,
    )
    return schemas


def _parameters(route: Route) -> list[dict[str, Any]]:
    names = [p.strip("{}") for p in route.path.split("/") if p.startswith("{")]
    params: list[dict[str, Any]] = [
        {"name": n.split("}")[0], "in": "path", "required": True, "schema": {"type": "string"}}
        for n in names
    ]
    queries = {
        "listTasks": ["queue", "phase", "labelSelector", "limit", "continue"],
        "waitTask": ["timeout"],
        "watchTasks": ["queue", "labelSelector"],
    }.get(route.name, [])
    params += [{"name": q, "in": "query", "schema": {"type": "string"}} for q in queries]
    headers = {
        "createTask": ["Prefer", "Idempotency-Key"],
        "getTask": ["If-None-Match"],
        "streamTask": ["Last-Event-ID"],
    }.get(route.name, [])
    params += [{"name": h, "in": "header", "schema": {"type": "string"}} for h in headers]
    return params


def _content(route: Route, code: int) -> dict[str, Any]:
    if code in (204, 304):
        return {}
    if code >= 400:
        return {"application/problem+json": {"schema": {"$ref": REF.format(model="Problem")}}}
    if route.name in ("streamTask", "watchTasks"):
        return {"text/event-stream": {"schema": {"type": "string"}}}
    model = {
        "listTasks": "TaskList",
        "createTasks": "BatchAnswer",
        "getTaskDetail": "TaskDetail",
    }.get(route.name, "TaskView")
    return {"application/json": {"schema": {"$ref": REF.format(model=model)}}}


def _operation(route: Route) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for code in (*route.answers, 401, 403):
        answer: dict[str, Any] = {"description": f"{code}"}
        if content := _content(route, code):
            answer["content"] = content
        responses[str(code)] = answer
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "parameters": _parameters(route),
        "responses": responses,
        "x-kubernetes-verbs": list(route.verbs),
    }
    if route.body != "none":
        model = "TaskRequest" if route.body == "task" else "Batch"
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}},
        }
    return op


def build_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in API_ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    for path in PUBLIC_PATHS:
        paths[path] = {
            "get": {
                "operationId": path.strip("/").replace(".", "_"),
                "security": [],
                "responses": {"200": {"description": "200"}},
            }
        }
    for path, operation_id in UI_PATHS.items():
        paths[path] = {
            "get": {
                "operationId": operation_id,
                "summary": "The web dashboard (static files; no token, no data).",
                "security": [],
                "responses": {"200": {"description": "200"}, "301": {"description": "301"}},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "AsyncTask gateway",
            "version": "v1",
            "description": "Submit, poll, long-poll, stream and cancel AsyncTasks. "
            "Authenticate with a Kubernetes bearer token; each call is "
            "authorized by a SubjectAccessReview on asynctasks.",
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
