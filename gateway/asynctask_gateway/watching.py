"""The dashboard's two reads: the namespace stream (``GET …/tasks:watch``) and a task's whole
record (``GET …/tasks/{name}/detail``).

The namespace stream is woken by the namespace feed (feed.py), never by polling, and writes
each changed task once in its latest state. It has no ``id:``: a collection has no single
version to resume from, so a reconnecting client lists again. The order that makes list +
stream exact: open the stream, wait for its first ``counts`` event (the subscription is then
in place), list, and apply the events that arrived meanwhile after the list: any change the
list missed, or showed older, has an event after it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from asynctask_gateway.listing import Query, parse_selector
from asynctask_gateway.lookup import find_object
from asynctask_gateway.params import parse_flag
from asynctask_gateway.problems import Problem
from asynctask_gateway.state import CALL, GATEWAY, json_response
from asynctask_gateway.streams import RECONNECT_MS, SSE_HEADERS
from asynctask_worker.views import task_view

#: The query parameters of the namespace stream (a task's phase changes under a filter, so
#: the phase filter is the client's: it holds the views and sees a task leave the phase).
WATCH_PARAMS = ("queue", "labelSelector")
#: The status fields a task page shows besides the view.
DETAIL_STATUS = (
    "conditions",
    "webhook",
    "lastError",
    "nextAttemptTime",
    "worker",
    "queuedTime",
    "observedGeneration",
)


def watch_query(params: Mapping[str, str]) -> Query:
    """The stream's filter; ValueError names a bad or unsupported parameter."""
    unknown = sorted(set(params) - set(WATCH_PARAMS))
    if unknown:
        raise ValueError(
            f"unsupported parameter {unknown[0]!r}: the stream filters by "
            f"{' and '.join(WATCH_PARAMS)} only"
        )
    selector = params.get("labelSelector") or ""
    return Query(
        queue=params.get("queue") or None,
        selector=parse_selector(selector) if selector.strip() else None,
    )


def frame(event: str, data: Any, event_id: str | None = None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def detail(obj: Mapping[str, Any], *, archived: bool = False) -> dict[str, Any]:
    """A task page's record (pure): the view (``archived`` when read from the history
    archive), the spec as written (with the request), the status fields the view leaves
    out, and the labels and annotations."""
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    status: Mapping[str, Any] = obj.get("status") or {}
    view = task_view(obj).model_copy(update={"archived": archived})
    return {
        "task": view.to_json(),
        "spec": dict(obj.get("spec") or {}),
        "status": {k: status[k] for k in DETAIL_STATUS if k in status},
        "labels": dict(meta.get("labels") or {}),
        "annotations": dict(meta.get("annotations") or {}),
    }


async def watch_tasks(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    try:
        query = watch_query(request.query)
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc
    keepalive = gw.settings.keepalive_seconds
    with gw.limits.hold("stream", call.user), gw.feed.subscribe(call.namespace) as sub:
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
        while True:
            names, counts_changed = sub.take()
            if counts_changed:
                await response.write(frame("counts", gw.feed.counts(call.namespace)))
            for name in names:
                entry = gw.cache.get(call.namespace, name)
                if entry is None:
                    await response.write(
                        frame("deleted", {"namespace": call.namespace, "name": name})
                    )
                elif query.matches(entry):
                    view = entry.view
                    await response.write(frame("task", view.to_json(), view.resource_version))
            try:
                await asyncio.wait_for(sub.signal.wait(), keepalive)
            except TimeoutError:
                await response.write(b": keepalive\n\n")


async def get_task_detail(request: web.Request) -> web.StreamResponse:
    """One GET to the apiserver: the cache keeps a slim projection without the request,
    and a task page is opened by a person, not by a fleet of clients. By name or uid, and
    from the history archive when the task is no longer live (lookup.py)."""
    gw, call = request.app[GATEWAY], request[CALL]
    try:
        archived_only = parse_flag("archived", request.query.get("archived"))
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc
    obj, archived = await find_object(gw, call.namespace, call.name, archived_only=archived_only)
    return json_response(detail(obj, archived=archived), headers={"Cache-Control": "no-cache"})
