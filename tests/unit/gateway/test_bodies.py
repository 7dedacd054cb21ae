"""The gateway reads a POST body whole, however it arrives, and no further than its limit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from asynctask_gateway.handlers import read_json
from asynctask_gateway.problems import Problem

LIMIT = 64 * 1024


async def echo(request: web.Request) -> web.Response:
    try:
        body = await read_json(request, LIMIT)
    except Problem as exc:
        return web.json_response({"status": exc.status, "detail": exc.detail}, status=exc.status)
    return web.json_response({"read": len(json.dumps(body))})


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]
        await asyncio.sleep(0.001)  # each piece its own write: the server sees them apart


async def post(data: Any) -> tuple[int, dict[str, Any]]:
    app = web.Application()
    app.router.add_post("/", echo)
    async with TestClient(TestServer(app)) as client:
        resp = await client.post("/", data=data, headers={"Content-Type": "application/json"})
        return resp.status, await resp.json()


async def test_a_body_that_arrives_in_pieces_is_read_whole() -> None:
    body = json.dumps({"queue": "q", "request": "x" * 40_000}).encode()
    status, answer = await post(pieces(body, 4096))  # chunked, no Content-Length
    assert (status, answer) == (200, {"read": len(body)})


async def test_a_body_in_pieces_past_the_limit_is_too_large() -> None:
    body = json.dumps({"request": "x" * (LIMIT + 10)}).encode()
    status, answer = await post(pieces(body, 4096))
    assert status == 413 and str(LIMIT) in answer["detail"]


async def test_a_declared_length_past_the_limit_is_refused_before_reading() -> None:
    status, answer = await post(b"x" * (LIMIT + 1))
    assert status == 413 and str(LIMIT) in answer["detail"]
