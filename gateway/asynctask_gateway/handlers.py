"""The task routes: submit (one or a batch), list, get, cancel, delete.

Reads come from the cache; writes go to the apiserver as the gateway's ServiceAccount after
the caller was authorized (see app.py's middleware), and the apiserver's refusals pass
through as problems.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from asynctask_gateway.kube import ApiError, tasks_path
from asynctask_gateway.listing import Query, page
from asynctask_gateway.lookup import find_view
from asynctask_gateway.params import etag_matches, parse_flag, prefer_wait
from asynctask_gateway.problems import Problem, from_api_error, from_validation_error
from asynctask_gateway.state import (
    CALL,
    GATEWAY,
    Call,
    Gateway,
    json_response,
    location,
    view_headers,
    view_response,
)
from asynctask_gateway.streams import wait_done
from asynctask_gateway.submissions import (
    MAX_BATCH,
    REQUEST_HASH,
    TaskRequest,
    idempotent_name,
    manifest,
    parse_idempotency_key,
    request_hash,
)
from asynctask_worker.views import TaskView, task_view

BATCH_CONCURRENCY = 16


async def read_json(request: web.Request, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise Problem(413, "RequestEntityTooLarge", f"the body is larger than {limit} bytes")
    # read(n) returns what has arrived, up to n bytes, not n bytes: a body that comes in
    # several pieces is read until its end (or one byte past the limit).
    raw = bytearray()
    while len(raw) <= limit and (piece := await request.content.read(limit + 1 - len(raw))):
        raw += piece
    if len(raw) > limit:
        raise Problem(413, "RequestEntityTooLarge", f"the body is larger than {limit} bytes")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise Problem(400, "BadRequest", f"the body is not JSON: {exc}") from exc


def validate(gw: Gateway, raw: Any) -> TaskRequest:
    if not isinstance(raw, dict):
        raise Problem(422, "Invalid", "the task must be a JSON object")
    try:
        req = TaskRequest.parse(raw)
    except ValidationError as exc:
        raise from_validation_error(exc) from exc
    size = len(json.dumps(req.request))
    if size > gw.settings.max_request_bytes:
        raise Problem(
            413,
            "RequestTooLarge",
            f"request is {size} bytes as JSON, more than the "
            f"{gw.settings.max_request_bytes} allowed: pass large data by reference",
        )
    return req


async def submit(gw: Gateway, call: Call, raw: Any, key: str | None) -> tuple[TaskView, bool]:
    """Create the task; ``(view, created)``. With an Idempotency-Key, the task that key
    created before (same body) is answered instead; another body with that key is 422."""
    req = validate(gw, raw)
    digest = request_hash(raw)
    name = idempotent_name(call.namespace, call.user.name, key) if key else None
    body = manifest(req, call.namespace, user=call.user.name, digest=digest, name=name, key=key)
    try:
        obj = await gw.kube.request("POST", tasks_path(call.namespace), body=body)
    except ApiError as exc:
        if exc.status == 409 and key is not None:
            return await _existing(gw, call.namespace, req.name or name or "", digest), False
        raise from_api_error(exc) from exc
    return gw.cache.seed(obj).view, True


async def _existing(gw: Gateway, namespace: str, name: str, digest: str) -> TaskView:
    try:
        obj = await gw.kube.request("GET", tasks_path(namespace, name))
    except ApiError as exc:
        raise from_api_error(exc) from exc
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    if annotations.get(REQUEST_HASH) != digest:
        raise Problem(
            422,
            "IdempotencyKeyReused",
            f'this Idempotency-Key created the task "{name}" with another body',
        )
    return task_view(obj)


async def create_task(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    raw = await read_json(request, gw.settings.max_body_bytes)
    try:
        key = parse_idempotency_key(request.headers.get("Idempotency-Key"))
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc
    wait = prefer_wait(request.headers.getall("Prefer", []))
    view, _ = await submit(gw, call, raw, key)
    headers = {"Location": location(view)}
    if wait is not None:
        headers["Preference-Applied"] = f"wait={wait}"
        if not view.done and wait > 0:
            view = await wait_done(gw, call, view, float(wait))
    return view_response(view, 200 if view.done and wait is not None else 202, headers)


async def create_tasks(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    raw = await read_json(request, gw.settings.max_batch_body_bytes)
    tasks = raw.get("tasks") if isinstance(raw, dict) else None
    if not isinstance(tasks, list) or not 1 <= len(tasks) <= MAX_BATCH or set(raw) != {"tasks"}:
        raise Problem(
            400, "BadRequest", f'the body must be {{"tasks": [...]}} with 1 to {MAX_BATCH} tasks'
        )
    gate = asyncio.Semaphore(BATCH_CONCURRENCY)

    async def one(item: Any) -> dict[str, Any]:
        async with gate:
            try:
                view, _ = await submit(gw, call, item, None)
            except Problem as problem:
                return {"status": problem.status, "problem": problem.body()}
            return {"status": 202, "location": location(view), "task": view.to_json()}

    items = await asyncio.gather(*(one(item) for item in tasks))
    return json_response({"items": items})


async def list_tasks(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    try:
        query = Query.parse(request.query)
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc
    entries, token = page(gw.cache.in_namespace(call.namespace), query)
    return json_response({"items": [e.view.to_json() for e in entries], "continue": token})


async def get_task(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    try:
        archived_only = parse_flag("archived", request.query.get("archived"))
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc
    # By name or uid; live, else archived (lookup.py).
    view = await find_view(gw, call.namespace, call.name, archived_only=archived_only)
    if etag_matches(request.headers.get("If-None-Match"), view.resource_version):
        return web.Response(status=304, headers=view_headers(view))
    return view_response(view)


async def cancel_task(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    entry = await gw.entry(call.namespace, call.name)
    if entry.view.done:
        raise Problem(
            409,
            "AlreadyFinished",
            f'the task "{call.name}" has already ended ({entry.view.phase.value})',
        )
    try:
        obj = await gw.kube.request(
            "PATCH",
            tasks_path(call.namespace, call.name),
            body={"spec": {"cancel": True}},
            content_type="application/merge-patch+json",
        )
    except ApiError as exc:
        raise from_api_error(exc) from exc
    return view_response(task_view(obj), 202)


async def delete_task(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    try:
        await gw.kube.request(
            "DELETE",
            tasks_path(call.namespace, call.name),
            params={"propagationPolicy": "Background"},
        )
    except ApiError as exc:
        raise from_api_error(exc) from exc
    return web.Response(status=204)
