"""Large payloads through the gateway (issue 24, docs/payloads.md): uploads, results.

* ``POST …/payloads`` (``create asynctasks``): the raw body, any Content-Type, streamed to
  the store under a fresh upload key while its sha256 is computed; 201 with the PayloadRef
  to create a task with (``requestRef``). Content-Length is required (411): S3 wants it for a
  streamed PUT, and the limit (``ASYNCTASK_GATEWAY_MAX_UPLOAD_BYTES``, 413) is checked
  before a byte is read.
* ``POST …/tasks`` with a JSON ``request`` over the threshold: offloaded here
  (:func:`offload`) and created with ``requestRef``; the upload is deleted if the create
  fails, so a failed submit leaves nothing behind.
* ``GET …/tasks/{name}/result`` (``get asynctasks``): the result, inline (JSON) or streamed
  from the store with the ref's Content-Type and Content-Length and ``Repr-Digest``, the
  bytes checked against the ref's sha256 as they pass (payload_streams.relay).
* ``GET …/tasks/{name}/result/url``: a presigned GET of the result (300 s, the public
  endpoint): for callers who reach the store themselves. Streaming is the default because the
  store need not be reachable by callers.

The store down is 503 ``PayloadStoreUnavailable``; offload off is 501 ``PayloadStorageOff``
saying how to turn it on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
from aiohttp import web

from asynctask_gateway.lookup import find_view
from asynctask_gateway.payload_store import CHUNK, ObjectMissing, PayloadStore, StoreUnavailable
from asynctask_gateway.payload_streams import (
    BodyIncomplete,
    ChecksumMismatch,
    Counted,
    relay,
    repr_digest,
)
from asynctask_gateway.problems import Problem
from asynctask_gateway.state import CALL, GATEWAY, Gateway, json_response
from asynctask_gateway.submissions import TaskRequest
from asynctask_worker.messages import Phase
from asynctask_worker.payloads import (
    BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    PayloadRef,
    upload_key,
)
from asynctask_worker.views import TaskView

log = logging.getLogger(__name__)
#: Lifetime of a result URL handed to a caller.
URL_SECONDS = 300
HOW_TO_ENABLE = (
    "large payloads need object storage: set ASYNCTASK_S3_ENDPOINT and ASYNCTASK_S3_BUCKET "
    "(with credentials) on the gateway and the operator (the chart's payloads.* values; "
    "docs/payloads.md)"
)


def store_of(gw: Gateway) -> PayloadStore:
    if gw.payloads is None:
        raise Problem(501, "PayloadStorageOff", f"this gateway stores no payloads: {HOW_TO_ENABLE}")
    return gw.payloads


def unavailable(exc: Exception) -> Problem:
    log.warning("the payload store is unavailable: %s", exc)
    return Problem(
        503, "PayloadStoreUnavailable", f"the payload store cannot be used right now: {exc}"
    )


async def store_bytes(
    gw: Gateway, namespace: str, chunks: Counted, content_type: str
) -> PayloadRef:
    """Stream ``chunks`` to a new upload key of ``namespace``; the ref of what was stored."""
    store = store_of(gw)
    key = upload_key(store.settings.prefix, namespace)
    try:
        await store.put(key, chunks, chunks.size, content_type)
    except StoreUnavailable as exc:
        if chunks.failure is not None:
            raise Problem(400, "BodyIncomplete", str(chunks.failure)) from exc
        raise unavailable(exc) from exc
    if not chunks.complete:  # the store answered before the body's end: never a ref to it
        await store.delete(key)
        raise Problem(400, "BodyIncomplete", str(chunks.failure or "the body was not read whole"))
    gw.metrics.payload_bytes.labels(direction="in").inc(chunks.size)
    return PayloadRef(
        bucket=store.bucket,
        key=key,
        size=chunks.size,
        contentType=content_type,
        sha256=chunks.sha256.hexdigest(),
    )


async def upload_payload(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    store_of(gw)
    size = request.content_length
    if size is None:
        raise Problem(411, "LengthRequired", "a payload's upload needs its Content-Length")
    if size > gw.settings.max_upload_bytes:
        raise Problem(
            413,
            "PayloadTooLarge",
            f"the body is {size} bytes, more than the {gw.settings.max_upload_bytes} "
            "this gateway takes (ASYNCTASK_GATEWAY_MAX_UPLOAD_BYTES)",
        )
    content_type = request.headers.get("Content-Type") or BINARY_CONTENT_TYPE
    chunks = Counted(request.content.iter_chunked(CHUNK), size)
    try:
        ref = await store_bytes(gw, call.namespace, chunks, content_type)
    except BodyIncomplete as exc:
        raise Problem(400, "BodyIncomplete", str(exc)) from exc
    return json_response(ref.document(), 201)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def offload(gw: Gateway, namespace: str, req: TaskRequest) -> TaskRequest:
    """``req`` with its JSON request stored and named by ``requestRef`` when the store is on
    and the request is over the threshold; else ``req`` as it is."""
    if gw.payloads is None or req.request is None or req.request_ref is not None:
        return req
    data = json.dumps(req.request, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) <= gw.payloads.settings.threshold_bytes:
        return req
    ref = await store_bytes(gw, namespace, Counted(_one(data), len(data)), JSON_CONTENT_TYPE)
    return req.model_copy(update={"request": None, "request_ref": ref})


async def forget_upload(gw: Gateway, before: TaskRequest, after: TaskRequest) -> None:
    """Delete what :func:`offload` stored for a task that was not created."""
    if gw.payloads is not None and after.request_ref is not None and before is not after:
        await gw.payloads.delete(after.request_ref.key)


async def _finished(gw: Gateway, namespace: str, key: str) -> TaskView:
    view = await find_view(gw, namespace, key, archived_only=False)
    if not view.done:
        raise Problem(409, "NotFinished", f'the task "{view.name}" is still {view.phase.value}')
    if view.phase is not Phase.SUCCEEDED:
        reason = view.error.reason if view.error and view.error.reason else view.phase.value
        raise Problem(
            409, "NoResult", f'the task "{view.name}" ended {view.phase.value} ({reason})'
        )
    return view


async def get_result(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    view = await _finished(gw, call.namespace, call.name)
    ref = view.result_ref
    if ref is None:
        return json_response(view.result)
    store = store_of(gw)
    try:
        async with store.get(ref.key) as upstream:
            answer = web.StreamResponse(
                headers={
                    "Content-Type": ref.content_type,
                    "Content-Length": str(ref.size),
                    "Repr-Digest": repr_digest(ref.sha256),
                    "Cache-Control": "no-store",
                }
            )
            await answer.prepare(request)
            try:
                sent = await relay(upstream.content.iter_chunked(CHUNK), answer.write, ref)
            except ChecksumMismatch as exc:
                gw.metrics.payload_mismatches.inc()
                log.error("the result of %s/%s is corrupt: %s", call.namespace, view.name, exc)
                return cut(request, answer)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("the store broke off the result of %s: %s", view.name, exc)
                return cut(request, answer)
            gw.metrics.payload_bytes.labels(direction="out").inc(sent)
            await answer.write_eof()
            return answer
    except ObjectMissing as exc:
        raise Problem(404, "PayloadNotFound", f"the stored result is gone: {exc}") from exc
    except StoreUnavailable as exc:
        raise unavailable(exc) from exc


def cut(request: web.Request, answer: web.StreamResponse) -> web.StreamResponse:
    """End a streamed answer without its last bytes: the connection is aborted, so the
    caller sees a body shorter than its Content-Length (an error), never a whole one."""
    if request.transport is not None:
        request.transport.abort()
    return answer


async def get_result_url(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    view = await _finished(gw, call.namespace, call.name)
    store = store_of(gw)
    ref = view.result_ref
    if ref is None:
        raise Problem(
            409,
            "ResultNotStored",
            f'the result of "{view.name}" is in the task itself: GET …/result, or the view',
        )
    url = store.presign("get_object", ref.key, URL_SECONDS, public=True)
    expires = datetime.now(UTC) + timedelta(seconds=URL_SECONDS)
    return json_response(
        {
            "url": url,
            "expiresAt": expires.isoformat(timespec="seconds").replace("+00:00", "Z"),
            "ref": ref.document(),
        }
    )
