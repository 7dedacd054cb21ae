"""The composition root: one function builds the gateway's aiohttp application.

aiohttp.web serves it because it is already installed (kopf depends on it), runs on the
same asyncio loop as the watch cache, and its ``StreamResponse`` does long-polls and
server-sent events without another framework.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from aiohttp import web

from asynctask_gateway import (
    bulk,
    handlers,
    history_handlers,
    patterns,
    payload_handlers,
    queues,
    schedules,
    streams,
    ui,
    watching,
)
from asynctask_gateway.auth import Authenticator
from asynctask_gateway.cache import TaskCache
from asynctask_gateway.kube import ApiError, Kube
from asynctask_gateway.metrics import CONTENT_TYPE_LATEST, Metrics
from asynctask_gateway.openapi import build_document
from asynctask_gateway.problems import Problem, from_api_error
from asynctask_gateway.routes import API_ROUTES, BY_NAME, Route
from asynctask_gateway.settings import GatewaySettings, S3Settings
from asynctask_gateway.state import CALL, GATEWAY, Call, Gateway, Handler, json_response

log = logging.getLogger(__name__)
HANDLERS: dict[str, Handler] = {
    "createTask": handlers.create_task,
    "createTasks": handlers.create_tasks,
    "listTasks": handlers.list_tasks,
    "getTask": handlers.get_task,
    "deleteTask": handlers.delete_task,
    "cancelTask": handlers.cancel_task,
    "waitTask": streams.wait_task,
    "streamTask": streams.stream_task,
    "watchTasks": watching.watch_tasks,
    "getTaskDetail": watching.get_task_detail,
    "cancelTasks": bulk.cancel_tasks,
    "deleteTasks": bulk.delete_tasks,
    **schedules.HANDLERS,
    **queues.HANDLERS,
    "listHistory": history_handlers.list_history,
    "resubmitTask": history_handlers.resubmit_task,
    "uploadPayload": payload_handlers.upload_payload,
    "getTaskResult": payload_handlers.get_result,
    "getTaskResultUrl": payload_handlers.get_result_url,
}


def router_path(route: Route) -> str:
    """The route's path as aiohttp matches it. No object's name holds a ``:`` (the actions'
    separator), so ``POST …/x:pause`` reaches the action, ``GET …/x:pause`` is 405 (not a
    lookup of the name ``x:pause``) and an OPTIONS on ``…/x:resubmit`` lists only POST."""
    return route.path.replace("{name}", "{name:[^{}/:]+}")


async def _authorize(request: web.Request, gw: Gateway, route_name: str) -> None:
    """Who calls (TokenReview), whether they may (SubjectAccessReview per resource and
    verb), whether this gateway serves the namespace, and whether the object's name can be
    an object's name (400 before the apiserver is asked); the answer is the request's
    :class:`Call` (namespace "" on a cluster-scoped route)."""
    route = BY_NAME[route_name]
    user = await gw.auth.authenticate(request.headers.get("Authorization"))
    namespace = request.match_info.get("namespace", "")
    name = request.match_info.get("name", "")
    await gw.auth.authorize(user, route.access(), namespace, name)
    if route.scope == "namespaced" and not gw.cache.serves(namespace):
        raise Problem(
            404, "NamespaceNotServed", f'this gateway does not serve the namespace "{namespace}"'
        )
    if "name" in request.match_info and not valid_name(name):
        what = {"asynctasks": "a task's", "asyncqueues": "a queue's"}.get(route.resource, "a")
        raise Problem(400, "InvalidName", f"{name!r} is not {what} name (a DNS-1123 subdomain)")
    request[CALL] = Call(user, namespace, name)


def valid_name(name: str) -> bool:
    return len(name) <= patterns.MAX_NAME and patterns.matches(patterns.NAME_PATTERN, name)


@web.middleware
async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authorization for the API routes, problem+json for every error, and metrics."""
    gw = request.app[GATEWAY]
    route_name = request.match_info.route.name or "other"
    started, code = time.monotonic(), 500
    try:
        if route_name in BY_NAME:
            await _authorize(request, gw, route_name)
        response = await handler(request)
        code = response.status
        return response
    except Problem as problem:
        code = problem.status
        return problem.response(request.path)
    except ApiError as exc:
        translated = from_api_error(exc)
        code = translated.status
        return translated.response(request.path)
    except web.HTTPException as exc:
        code = exc.status
        if exc.status >= 400:
            return Problem(
                exc.status,
                exc.reason.replace(" ", ""),
                exc.text or exc.reason,
                headers={k: v for k, v in exc.headers.items() if k in ("Allow",)},
            ).response(request.path)
        raise
    finally:
        gw.metrics.requests.labels(request.method, route_name, str(code)).inc()
        gw.metrics.latency.labels(request.method, route_name).observe(time.monotonic() - started)


async def healthz(request: web.Request) -> web.StreamResponse:
    return web.Response(text="ok\n")


async def readyz(request: web.Request) -> web.StreamResponse:
    if request.app[GATEWAY].cache.synced:
        return web.Response(text="ok\n")
    return web.Response(status=503, text="the watch cache has not synced yet\n")


async def metrics(request: web.Request) -> web.StreamResponse:
    body = request.app[GATEWAY].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


OPENAPI = web.AppKey("openapi", dict)


async def openapi(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[OPENAPI])


async def _watching(app: web.Application) -> AsyncIterator[None]:
    gw = app[GATEWAY]
    task = asyncio.create_task(gw.cache.run(), name="watch-cache")
    if gw.archive is not None:
        await gw.archive.start()
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if gw.archive is not None:
        await gw.archive.close()
    if gw.payloads is not None:
        await gw.payloads.close()
    await gw.kube.close()


def make_gateway(settings: GatewaySettings, kube: Kube, s3: S3Settings | None = None) -> Gateway:
    metrics = Metrics()
    archive = None
    if settings.archive_url:
        from asynctask_gateway.archive import ArchiveReader  # psycopg only when configured

        archive = ArchiveReader(settings.archive_url, pool_size=settings.archive_pool_size)
    payloads = None
    if s3 is not None and s3.enabled:
        from asynctask_gateway.payload_store import PayloadStore  # boto3 only when configured

        payloads = PayloadStore(s3)
    return Gateway(
        archive=archive,
        payloads=payloads,
        settings=settings,
        kube=kube,
        metrics=metrics,
        cache=TaskCache(kube, settings.namespaces, metrics, settings.watch_timeout_seconds),
        auth=Authenticator(
            kube,
            metrics,
            audiences=settings.audiences,
            allow_anonymous=settings.allow_anonymous,
            cache_seconds=settings.auth_cache_seconds,
        ),
    )


def make_app(gw: Gateway) -> web.Application:
    app = web.Application(
        middlewares=[middleware], client_max_size=gw.settings.max_batch_body_bytes
    )
    app[GATEWAY] = gw
    app[OPENAPI] = build_document()
    for route in API_ROUTES:
        app.router.add_route(
            route.method, router_path(route), HANDLERS[route.name], name=route.name
        )
    app.router.add_get("/healthz", healthz, name="healthz")
    app.router.add_get("/readyz", readyz, name="readyz")
    app.router.add_get("/metrics", metrics, name="metrics")
    app.router.add_get("/openapi.json", openapi, name="openapi")
    ui.add_routes(app)
    app.cleanup_ctx.append(_watching)
    return app
