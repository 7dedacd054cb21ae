"""The history routes (issue 23, docs/history.md): the namespace's history listed (each
item marked live or archived), and a task resubmitted from its spec (found by name or uid,
live or archived: lookup.py).

Authorization is the routes' SubjectAccessReview on ``asynctasks`` in the namespace (the
route table), and every archive query is bound to that namespace.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from psycopg import Error as DatabaseError

from asynctask_gateway.archive import archived_view
from asynctask_gateway.history import HistoryQuery
from asynctask_gateway.kube import API, KIND, ApiError, tasks_path
from asynctask_gateway.lookup import find_object, reader, unavailable
from asynctask_gateway.problems import Problem, from_api_error
from asynctask_gateway.state import CALL, GATEWAY, Gateway, json_response, location, view_response
from asynctask_gateway.submissions import CREATED_BY
from asynctask_worker.views import task_view

#: The label a resubmitted task carries: the uid of the task it was made from.
RESUBMITTED_FROM = "asynctask.dev/resubmitted-from"
#: What a resubmission does not copy: it is a new run, neither cancelled nor delayed.
NOT_COPIED = ("cancel", "notBefore")


async def list_history(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    archive = reader(gw)
    try:
        query = HistoryQuery.parse(request.query)
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc
    try:
        objects, token = await archive.page(call.namespace, query)
    except (DatabaseError, OSError) as exc:
        raise unavailable(exc) from exc
    return json_response({"items": [marked(gw, o) for o in objects], "continue": token})


def marked(gw: Gateway, obj: dict[str, Any]) -> dict[str, Any]:
    """An archived run's view, ``archived: false`` while that very task (same uid) is still
    live (archived when it ended, not yet deleted by its TTL), true once it is gone."""
    view = archived_view(obj)
    entry = gw.cache.get(view.namespace, view.name)
    if entry is not None and entry.view.uid == view.uid:
        view = view.model_copy(update={"archived": False})
    return view.to_json()


async def resubmit_task(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    original, _ = await find_object(gw, call.namespace, call.name)
    meta = original.get("metadata") or {}
    name = str(meta.get("name") or call.name)  # the path may hold the uid
    spec = {k: v for k, v in (original.get("spec") or {}).items() if k not in NOT_COPIED}
    labels = {**(meta.get("labels") or {}), RESUBMITTED_FROM: str(meta.get("uid") or "")}
    body = {
        "apiVersion": API.removeprefix("/apis/"),
        "kind": KIND,
        "metadata": {
            "generateName": f"{name[:200]}-",
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
