"""The history routes (issue 23, docs/history.md): a task that is no longer live read from
the archive, the namespace's history listed, and a task resubmitted from its spec.

Authorization is the routes' SubjectAccessReview on ``asynctasks`` in the namespace (the
route table), and every archive query is bound to that namespace.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web
from psycopg import Error as DatabaseError

from asynctask_gateway.archive import ArchiveReader, archived_view
from asynctask_gateway.history import HistoryQuery
from asynctask_gateway.kube import API, KIND, ApiError, tasks_path
from asynctask_gateway.problems import Problem, from_api_error
from asynctask_gateway.state import CALL, GATEWAY, Gateway, json_response, location, view_response
from asynctask_gateway.submissions import CREATED_BY
from asynctask_worker.views import TaskView, task_view

log = logging.getLogger(__name__)

#: The label a resubmitted task carries: the uid of the task it was made from.
RESUBMITTED_FROM = "asynctask.dev/resubmitted-from"
#: What a resubmission does not copy: it is a new run, neither cancelled nor delayed.
NOT_COPIED = ("cancel", "notBefore")


def _reader(gw: Gateway) -> ArchiveReader:
    if gw.archive is None:
        raise Problem(404, "ArchiveNotConfigured", "this gateway has no history archive")
    return gw.archive


def _unavailable(exc: Exception) -> Problem:
    log.warning("the history archive could not be read: %s", exc)
    return Problem(503, "ArchiveUnavailable", "the history archive cannot be read right now")


async def archived_object(gw: Gateway, namespace: str, name: str) -> dict[str, Any] | None:
    """The latest archived run of a task, or None (no archive, or never archived)."""
    if gw.archive is None:
        return None
    try:
        return await gw.archive.latest(namespace, name)
    except (DatabaseError, OSError) as exc:
        raise _unavailable(exc) from exc


async def view_or_archived(gw: Gateway, namespace: str, name: str) -> TaskView:
    """The live task's view; when it is not live, its latest archived run's (404 if none)."""
    try:
        return (await gw.entry(namespace, name)).view
    except Problem as gone:
        if gone.status != 404:
            raise
        obj = await archived_object(gw, namespace, name)
        if obj is None:
            raise
        return archived_view(obj)


async def list_history(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    reader = _reader(gw)
    try:
        query = HistoryQuery.parse(request.query)
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc
    try:
        objects, token = await reader.page(call.namespace, query)
    except (DatabaseError, OSError) as exc:
        raise _unavailable(exc) from exc
    items = [archived_view(o).to_json() for o in objects]
    return json_response({"items": items, "continue": token})


async def resubmit_task(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    try:
        original = await gw.kube.request("GET", tasks_path(call.namespace, call.name))
    except ApiError as exc:
        if exc.status != 404:
            raise from_api_error(exc) from exc
        found = await archived_object(gw, call.namespace, call.name)
        if found is None:
            raise from_api_error(exc) from exc
        original = found
    meta = original.get("metadata") or {}
    spec = {k: v for k, v in (original.get("spec") or {}).items() if k not in NOT_COPIED}
    labels = {**(meta.get("labels") or {}), RESUBMITTED_FROM: str(meta.get("uid") or "")}
    body = {
        "apiVersion": API.removeprefix("/apis/"),
        "kind": KIND,
        "metadata": {
            "generateName": f"{call.name[:200]}-",
            "namespace": call.namespace,
            "labels": labels,
            "annotations": {CREATED_BY: call.user.name},
        },
        "spec": spec,
    }
    try:
        created = await gw.kube.request("POST", tasks_path(call.namespace), body=body)
    except ApiError as exc:
        raise from_api_error(exc) from exc
    view = task_view(created)
    return view_response(view, 202, {"Location": location(view)})
