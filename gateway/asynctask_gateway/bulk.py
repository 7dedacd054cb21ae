"""Bulk actions by label selector: ``POST …/tasks:cancel`` and ``POST …/tasks:delete``.

The tasks are matched in the cache, as a list is (by name, at most ``limit`` per call, the
rest through ``continue``). Authorization is per object: the route needs ``list`` and the
action's verb (``patch``, ``delete``) in the whole namespace (the middleware, as for every
route), and then each matched task is reviewed by its name (a SubjectAccessReview with
``resourceAttributes.name``, cached like every decision). Under RBAC the namespace-wide
grant covers every object, so the second review agrees; an authorizer that decides per
object is obeyed object by object: a task the caller may not change is counted as failed
(``Forbidden``) and left alone. Then the gateway's ServiceAccount patches or deletes each
task, as the one-task routes do.

POST with an action name, not ``DELETE …/tasks`` (Kubernetes' deletecollection): the
answer is a body of counts for both actions alike, and a collection DELETE that a tool
sends without a selector must never mean "everything".
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from asynctask_gateway.cache import Entry
from asynctask_gateway.kube import GROUP, PLURAL, ApiError, tasks_path
from asynctask_gateway.listing import Query, SelectorRequired, page
from asynctask_gateway.problems import Problem, from_api_error
from asynctask_gateway.state import CALL, GATEWAY, Call, Gateway, json_response
from asynctask_worker.bulk import (
    Action,
    BulkAnswer,
    BulkItem,
    acted,
    cancel_skipped,
    failed,
    gone,
)

BULK_CONCURRENCY = 16
VERBS: dict[Action, str] = {"cancel": "patch", "delete": "delete"}


def bulk_query(params: dict[str, str]) -> Query:
    """The bulk query, or the 400 problem that says what is wrong with it."""
    try:
        return Query.parse_bulk(params)
    except SelectorRequired as exc:
        raise Problem(400, "SelectorRequired", str(exc)) from exc
    except ValueError as exc:
        raise Problem(400, "BadRequest", str(exc)) from exc


async def _authorized(gw: Gateway, call: Call, action: Action, name: str) -> BulkItem | None:
    """``None`` when the caller may act on this task, else its failed item."""
    verb = VERBS[action]
    try:
        if await gw.auth.allowed(call.user, verb, call.namespace, name):
            return None
    except Problem as problem:
        return failed(name, problem.reason, problem.detail)
    return failed(
        name,
        "Forbidden",
        f'{call.user.name} cannot {verb} {PLURAL}.{GROUP} "{name}" in the namespace '
        f'"{call.namespace}"',
    )


async def _act(gw: Gateway, call: Call, action: Action, entry: Entry) -> BulkItem:
    name = entry.view.name
    if action == "cancel" and (skip := cancel_skipped(entry.view, entry.cancel)):
        return skip
    if refused := await _authorized(gw, call, action, name):
        return refused
    try:
        if action == "cancel":
            await gw.kube.request(
                "PATCH",
                tasks_path(call.namespace, name),
                body={"spec": {"cancel": True}},
                content_type="application/merge-patch+json",
            )
        else:
            await gw.kube.request(
                "DELETE",
                tasks_path(call.namespace, name),
                params={"propagationPolicy": "Background"},
            )
    except ApiError as exc:
        if exc.status == 404:
            return gone(name)
        problem = from_api_error(exc)
        return failed(name, problem.reason, problem.detail)
    return acted(name, action)


async def bulk(request: web.Request, action: Action) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    query = bulk_query(
        {k: request.query[k] for k in ("labelSelector", "limit", "continue") if k in request.query}
    )
    entries, token = page(gw.cache.in_namespace(call.namespace), query)
    gate = asyncio.Semaphore(BULK_CONCURRENCY)

    async def one(entry: Entry) -> BulkItem:
        async with gate:
            return await _act(gw, call, action, entry)

    items = await asyncio.gather(*(one(entry) for entry in entries))
    return json_response(BulkAnswer.of(action, items, token).to_json())


async def cancel_tasks(request: web.Request) -> web.StreamResponse:
    return await bulk(request, "cancel")


async def delete_tasks(request: web.Request) -> web.StreamResponse:
    return await bulk(request, "delete")
