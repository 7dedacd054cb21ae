"""The apiserver calls of the routes on AsyncTask's other kinds (schedules, queues), read and
written straight through (few objects, read by people): one call with the apiserver's errors
told as problem details, and the handler that flips one boolean of a resource's spec
(``:suspend``/``:resume`` of a schedule, ``:pause``/``:resume`` of a queue)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from asynctask_gateway.kube import ApiError
from asynctask_gateway.problems import from_api_error
from asynctask_gateway.state import CALL, GATEWAY, Call, Gateway


async def kube_call(gw: Gateway, method: str, path: str, **kw: Any) -> dict[str, Any]:
    """One apiserver call; its refusal raised as the matching problem (404, 409, 422…)."""
    try:
        return await gw.kube.request(method, path, **kw)
    except ApiError as exc:
        raise from_api_error(exc) from exc


def spec_switch(
    path: Callable[[Call], str],
    field: str,
    value: bool,
    respond: Callable[[dict[str, Any]], web.StreamResponse],
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A handler that merge-patches ``spec.<field>: value`` on the call's object at
    ``path(call)`` and answers with ``respond(the patched object)``."""

    async def handler(request: web.Request) -> web.StreamResponse:
        gw, call = request.app[GATEWAY], request[CALL]
        obj = await kube_call(
            gw,
            "PATCH",
            path(call),
            body={"spec": {field: value}},
            content_type="application/merge-patch+json",
        )
        return respond(obj)

    return handler
