"""The operator's apiserver client, against a local HTTP server: it keeps no cookies (the
apiserver sets none; a cookie jar only cost CPU on every call), a call's time bound counts
from when it has a connection (not while it waits its turn for one), and the Lease's calls
and the schedules' creates never wait behind other calls."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from kubernetes import client as k8s_client

from asynctask_operator.apiserver.apiclient import METADATA_ONLY, ApiClient
from asynctask_operator.apiserver.kube import Kube
from asynctask_operator.apiserver.resource import tasks_path
from asynctask_operator.apiserver.schedule_calls import ScheduleCalls

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """Serve a handler on every path; gives the server's URL."""
    runners: list[web.AppRunner] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"  # type: ignore[union-attr]

    yield start
    for runner in runners:
        await runner.cleanup()


async def test_a_cookie_the_server_sets_is_never_sent_back() -> None:
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response({"kind": "Status"})
        response.set_cookie("session", "abc")
        return response

    app = web.Application()
    app.router.add_get("/api", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "localhost", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    api = ApiClient(k8s_client.Configuration(host=f"http://localhost:{port}"))
    try:
        assert await api.call("GET", "/api") == {"kind": "Status"}
        assert await api.call("GET", "/api") == {"kind": "Status"}
    finally:
        await api.close()
        await runner.cleanup()
    assert seen == [None, None]


async def test_a_call_waiting_for_a_connection_is_not_timed_out_meanwhile(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """Under a backlog a write waits for one of the pool's connections; its time bound
    counts once it has one. Counted from the start (aiohttp's ``total``), a write that had
    waited its turn was abandoned as it went out: the apiserver logged a 504 ("context
    canceled") for a write it may have applied, and the operator made it again (tasks
    with 4 and 5 writes). Here one connection serves 8 calls of 0.2 s each (1.6 s in all);
    each call is bound to 1 s, five times what it takes on its connection."""
    served = 0

    async def slow(request: web.Request) -> web.Response:
        nonlocal served
        await asyncio.sleep(0.2)
        served += 1
        return web.json_response({"n": served})

    api = ApiClient(k8s_client.Configuration(host=await serve(slow)), connections=1)
    try:
        answers = await asyncio.gather(*(api.call("GET", "/x", seconds=1.0) for _ in range(8)))
    finally:
        await api.close()
    assert sorted(a["n"] for a in answers) == list(range(1, 9))


async def test_the_lease_has_connections_of_its_own(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """A leader's renewal never waits behind the task writes that fill the calls' pool."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/busy":
            await release.wait()
        return web.json_response({"path": request.path})

    api = ApiClient(k8s_client.Configuration(host=await serve(handler)), connections=1)
    try:
        busy = asyncio.gather(*(api.call("GET", "/busy") for _ in range(3)))
        await asyncio.sleep(0.1)  # the calls' one connection is taken, two calls wait
        lease = await asyncio.wait_for(api.call("GET", "/lease", pool="lease"), 10)
        assert lease == {"path": "/lease"} and not busy.done()
        release.set()
        assert len(await busy) == 3
    finally:
        release.set()
        await api.close()


async def test_a_schedules_create_has_connections_of_its_own(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """A slot's task is created while the calls' pool is full of task writes (before, the
    creates of 200 due schedules waited 0.5 s p50 for one of its 16 connections)."""
    release = asyncio.Event()

    async def handler(request: web.Request) -> web.Response:
        if request.path == "/busy":
            await release.wait()
        return web.json_response({"path": request.path, "method": request.method}, status=201)

    api = ApiClient(k8s_client.Configuration(host=await serve(handler)), connections=1)
    try:
        busy = asyncio.gather(*(api.call("GET", "/busy") for _ in range(3)))
        await asyncio.sleep(0.1)  # the calls' one connection is taken, two calls wait
        body = {"metadata": {"name": "every-1796500000"}}
        created = await asyncio.wait_for(ScheduleCalls(api).create_task("ns", body), 10)
        assert created == {"path": tasks_path("ns"), "method": "POST"} and not busy.done()
        release.set()
        assert len(await busy) == 3
    finally:
        release.set()
        await api.close()


async def test_a_status_write_asks_for_the_objects_metadata_only(
    serve: Callable[[Handler], Awaitable[str]],
) -> None:
    """Nobody reads the answer of a status write but its errors: the apiserver is asked
    for the metadata alone, not the whole object (spec, status, result) encoded, sent,
    decrypted and parsed on every write. Other calls still get whole objects. Nor does it
    look for unknown fields to warn about (``fieldValidation=Ignore``)."""
    seen: list[tuple[str, str]] = []
    queries: list[dict[str, str]] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append((request.method, request.headers["Accept"]))
        queries.append(dict(request.query))
        return web.json_response({"kind": "PartialObjectMetadata", "metadata": {"name": "t"}})

    api = ApiClient(k8s_client.Configuration(host=await serve(handler)))
    try:
        kube = Kube(api)
        answer = await kube.replace_status("ns", "t", "uid-1", {"phase": "Pending"})
        assert answer["metadata"] == {"name": "t"}
        await kube.get("ns", "t")
    finally:
        await api.close()
    assert seen == [("PATCH", METADATA_ONLY), ("GET", "application/json")]
    assert queries == [{"fieldValidation": "Ignore"}, {}]
    assert METADATA_ONLY == "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"
