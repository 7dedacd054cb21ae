"""The schedule routes: list, create, get, delete, suspend, resume and trigger
AsyncTaskSchedules (``/v1/namespaces/{namespace}/schedules``).

Reads go straight to the apiserver, not through a watch cache: a namespace holds a few
schedules, not thousands, they are read by people (the CLI, the dashboard) rather than
polled by fleets of clients, and a schedule's status moves once per slot, so a list or GET
per call costs little and is never stale right after a suspend or a trigger. Writes go to
the apiserver as the gateway's ServiceAccount once the caller was authorized (app.py's
middleware: ``asynctaskschedules`` in the namespace; a trigger also ``create`` on
``asynctasks``); the apiserver's refusals (schema, CEL rules) pass through as problems.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import ValidationError

from asynctask_gateway.handlers import read_json
from asynctask_gateway.kube import API, tasks_path
from asynctask_gateway.problems import Problem, from_validation_error
from asynctask_gateway.resource_calls import kube_call, spec_switch
from asynctask_gateway.schedule_requests import PLURAL, ScheduleRequest, schedule_manifest
from asynctask_gateway.state import (
    CALL,
    GATEWAY,
    Call,
    Gateway,
    Handler,
    json_response,
    location,
    view_response,
)
from asynctask_gateway.submissions import CREATED_BY
from asynctask_worker.resource_views import ScheduleView, manual_task, schedule_view

#: The most schedules one list answers (a namespace with more is listed page by page from
#: the apiserver, and answered whole).
PAGE = 500


def schedules_path(namespace: str, name: str | None = None) -> str:
    base = f"{API}/namespaces/{namespace}/{PLURAL}"
    return f"{base}/{name}" if name else base


def schedule_location(view: ScheduleView) -> str:
    return f"/v1/namespaces/{view.namespace}/schedules/{view.name}"


def schedule_response(view: ScheduleView, status: int = 200, **headers: str) -> web.Response:
    return json_response(
        view.to_json(),
        status,
        {"ETag": f'"{view.resource_version}"', "Cache-Control": "no-cache", **headers},
    )


async def _read(gw: Gateway, call: Call) -> dict[str, Any]:
    return await kube_call(gw, "GET", schedules_path(call.namespace, call.name))


def validate(raw: Any) -> ScheduleRequest:
    if not isinstance(raw, dict):
        raise Problem(422, "Invalid", "the schedule must be a JSON object")
    try:
        return ScheduleRequest.parse(raw)
    except ValidationError as exc:
        raise from_validation_error(exc, what="schedule") from exc


async def list_schedules(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    params = {"limit": str(PAGE)}
    views: list[ScheduleView] = []
    while True:
        answer = await kube_call(gw, "GET", schedules_path(call.namespace), params=params)
        views += [schedule_view(obj) for obj in answer.get("items") or []]
        token = (answer.get("metadata") or {}).get("continue")
        if not token:
            break
        params["continue"] = str(token)
    views.sort(key=lambda v: v.name)
    return json_response({"items": [v.to_json() for v in views]})


async def create_schedule(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    req = validate(await read_json(request, gw.settings.max_body_bytes))
    body = schedule_manifest(req, call.namespace, user=call.user.name)
    view = schedule_view(await kube_call(gw, "POST", schedules_path(call.namespace), body=body))
    return schedule_response(view, 201, Location=schedule_location(view))


async def get_schedule(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    return schedule_response(schedule_view(await _read(gw, call)))


async def delete_schedule(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    await kube_call(
        gw,
        "DELETE",
        schedules_path(call.namespace, call.name),
        params={"propagationPolicy": "Background"},
    )
    return web.Response(status=204)


def _schedule_path(call: Call) -> str:
    return schedules_path(call.namespace, call.name)


def _respond(obj: dict[str, Any]) -> web.StreamResponse:
    return schedule_response(schedule_view(obj))


suspend_schedule = spec_switch(_schedule_path, "suspend", True, _respond)
resume_schedule = spec_switch(_schedule_path, "suspend", False, _respond)


async def trigger_schedule(request: web.Request) -> web.StreamResponse:
    """A task from the schedule's template, now: read the schedule, create its manual
    task (generateName ``<schedule>-manual-``, owned by the schedule), answer as a
    submission does."""
    gw, call = request.app[GATEWAY], request[CALL]
    schedule = await _read(gw, call)
    body = manual_task(schedule, {CREATED_BY: call.user.name})
    obj = await kube_call(gw, "POST", tasks_path(call.namespace), body=body)
    view = gw.cache.seed(obj).view
    return view_response(view, 202, {"Location": location(view)})


HANDLERS: dict[str, Handler] = {
    "listSchedules": list_schedules,
    "createSchedule": create_schedule,
    "getSchedule": get_schedule,
    "deleteSchedule": delete_schedule,
    "suspendSchedule": suspend_schedule,
    "resumeSchedule": resume_schedule,
    "triggerSchedule": trigger_schedule,
}
