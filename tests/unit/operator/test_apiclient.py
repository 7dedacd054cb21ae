"""The operator's apiserver client keeps no cookies (the apiserver sets none; a cookie jar
only cost CPU on every call), against a local HTTP server that does set one. The server is
reached by a host name: aiohttp's default jar ignores cookies from IP addresses, so with
127.0.0.1 this test would pass with the default jar too."""

from __future__ import annotations

from aiohttp import web
from kubernetes import client as k8s_client

from asynctask_operator.apiserver.apiclient import ApiClient


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
