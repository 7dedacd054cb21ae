"""Long-polls (``/wait``, ``Prefer: wait``) and server-sent event streams (``/events``).

Both are woken by the cache (:meth:`TaskCache.change`), never by polling. A task's status is
a state, not a log, so every event carries the whole view: a client that was too slow for
some intermediate states gets the latest one, and a reconnecting client needs nothing but
the resourceVersion it saw last (``Last-Event-ID``):

* the same as now, task not done: nothing is repeated, the stream waits for the next change;
* the same as now, task done: ``204``, which tells a browser's EventSource to stop;
* anything else: the current state at once.
"""

from __future__ import annotations

import asyncio
import json
from typing import Literal

from aiohttp import web

from asynctask_gateway.params import wait_timeout
from asynctask_gateway.problems import Problem
from asynctask_gateway.state import CALL, GATEWAY, Call, Gateway, view_response
from asynctask_worker.views import TaskView

#: Milliseconds a browser waits before reconnecting a dropped stream.
RECONNECT_MS = 3000
Start = Literal["end", "send", "wait"]
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}  # nginx must not buffer the stream


def on_connect(view: TaskView, last_event_id: str | None) -> Start:
    if last_event_id is not None and last_event_id.strip() == view.resource_version:
        return "end" if view.done else "wait"
    return "send"


def event_name(view: TaskView, previous: TaskView | None) -> str:
    """The phase when it changed (or for the first event), else ``progress``."""
    if previous is not None and previous.phase is view.phase:
        return "progress"
    return view.phase.value


def sse_event(view: TaskView, name: str) -> bytes:
    data = json.dumps(view.to_json(), separators=(",", ":"))
    return f"id: {view.resource_version}\nevent: {name}\ndata: {data}\n\n".encode()


def gone(namespace: str, name: str) -> Problem:
    return Problem(404, "NotFound", f'the task "{name}" in "{namespace}" was deleted')


async def next_view(gw: Gateway, view: TaskView, within: float) -> TaskView | None:
    """The task's view once it differs from ``view`` (``view`` again after ``within``
    seconds); ``None`` once the task was deleted.

    A task the cache does not hold may merely be newer than the watch (created a moment ago
    through another replica): a GET tells, and then the cache's arrival is awaited (at most
    a second, so a lagging cache costs one GET a second, not a busy loop)."""
    entry = await gw.cache.change(view.namespace, view.name, view.resource_version, within)
    if entry is not None:
        return entry.view
    try:
        fetched = await gw.entry(view.namespace, view.name)
    except Problem as problem:
        if problem.status == 404:
            return None
        raise
    arrived = await gw.cache.change(view.namespace, view.name, None, min(within, 1.0))
    return (arrived or fetched).view


async def wait_done(gw: Gateway, call: Call, view: TaskView, seconds: float) -> TaskView:
    """The view once the task is done, or the latest after ``seconds``."""
    with gw.limits.hold("wait", call.user):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while not view.done:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            latest = await next_view(gw, view, remaining)
            if latest is None:
                raise gone(view.namespace, view.name)
            view = latest
        return view


async def wait_task(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    try:
        timeout = wait_timeout(request.query.get("timeout"), gw.settings.default_wait_seconds)
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc
    view = (await gw.entry(call.namespace, call.name)).view
    view = await wait_done(gw, call, view, timeout)
    # At the timeout: the latest state, done: false, and "ask again right away".
    return view_response(view, 200, {} if view.done else {"Retry-After": "0"})


async def stream_task(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    view = (await gw.entry(call.namespace, call.name)).view
    start = on_connect(view, request.headers.get("Last-Event-ID"))
    if start == "end":
        return web.Response(status=204)
    with gw.limits.hold("stream", call.user):
        response = web.StreamResponse(headers=SSE_HEADERS)
        await response.prepare(request)
        await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
        if start == "send":
            await response.write(sse_event(view, event_name(view, None)))
        await _follow(gw, response, view)
        await response.write_eof()
        return response


async def _follow(gw: Gateway, response: web.StreamResponse, seen: TaskView) -> None:
    """Write each change after ``seen`` until the terminal one (or the task is deleted)."""
    keepalive = gw.settings.keepalive_seconds
    while not seen.done:
        latest = await next_view(gw, seen, keepalive)
        if latest is None:
            problem = gone(seen.namespace, seen.name).body()
            await response.write(f"event: deleted\ndata: {json.dumps(problem)}\n\n".encode())
            return
        if latest.resource_version == seen.resource_version:
            await response.write(b": keepalive\n\n")
            continue
        await response.write(sse_event(latest, event_name(latest, seen)))
        seen = latest
