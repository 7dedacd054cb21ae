"""The SDK's large payloads, through its stub broker and a small HTTP store
(tests/unit/worker/payload_store.py): a stored request reaches the handler parsed or as a
Payload, checked; a large or binary result is stored by one PUT and reported as a ref;
outages are retried up to the bound; what cannot work ends in a clear Error."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctask_worker import App, Blob, Payload, Phase
from asynctask_worker.payloads import PayloadGrant, PayloadRef
from asynctask_worker.testing import StubBroker, TaskResult

from .payload_store import Store

BUCKET = "payloads"
REQUEST_KEY = "asynctask/default/uploads/abc"
RESULT_KEY = "asynctask/default/uid-1/result"

app = App()
seen: dict[str, Any] = {}


@app.task("echo")
def echo(request: Any) -> Any:
    if isinstance(request, Payload):
        seen["payload"] = (request.size, request.content_type, request.sha256, request.read())
        return request
    return request


@app.task("big-json")
def big_json(request: dict[str, int]) -> dict[str, str]:
    return {"text": "x" * request["n"]}


@app.task("raw")
def raw(request: Any) -> bytes:
    return b"\x00\xff" * 1000


@app.task("file")
def file_result(request: Payload) -> Blob:
    return Blob(request.open(), content_type="application/x-copy")


@app.task("pipe")
def pipe_result(request: Any) -> Blob:
    r, w = os.pipe()
    with os.fdopen(w, "wb") as out:
        out.write(b"piped" * 100)
    return Blob(os.fdopen(r, "rb"), content_type="text/plain")


@app.task("missing-file")
def missing_file(request: Any) -> Blob:
    return Blob("/nonexistent/result.bin")


@app.task("never")
def never(request: Any) -> Any:
    seen["never"] = True
    return None


@pytest.fixture
def store() -> Iterator[Store]:
    with Store() as s:
        yield s


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def ref_of(data: bytes, content_type: str, **changes: Any) -> PayloadRef:
    fields: dict[str, Any] = {
        "bucket": BUCKET,
        "key": REQUEST_KEY,
        "size": len(data),
        "contentType": content_type,
        "sha256": sha(data),
    }
    return PayloadRef.model_validate({**fields, **changes})


def grant(store: Store, *, request: bool = True, threshold: int = 1024) -> PayloadGrant:
    return PayloadGrant(
        request_url=store.url(REQUEST_KEY) if request else None,
        result_url=store.url(RESULT_KEY),
        result_bucket=BUCKET,
        result_key=RESULT_KEY,
        threshold_bytes=threshold,
    )


def run(queue: str, *, retry: float = 5.0, pool: str = "thread", **enqueue: Any) -> TaskResult:
    with StubBroker(app, payload_retry_seconds=retry, pool=pool) as broker:  # type: ignore[arg-type]
        return broker.result(broker.enqueue(queue, **enqueue), 30)


def test_a_stored_json_request_reaches_the_handler_parsed_and_a_small_result_stays_inline(
    store: Store,
) -> None:
    data = json.dumps({"greeting": "hello"}).encode()
    store.put(REQUEST_KEY, data, "application/json")
    end = run("echo", request_ref=ref_of(data, "application/json"), payload=grant(store))
    assert end.phase is Phase.SUCCEEDED, end.error
    assert end.result == {"greeting": "hello"}
    assert end.result_ref is None
    assert ("PUT", f"/bucket/{RESULT_KEY}") not in store.requests


def test_a_binary_request_is_a_payload_and_returned_it_is_stored_as_the_result(
    store: Store,
) -> None:
    data = bytes(range(256)) * 5000
    store.put(REQUEST_KEY, data, "image/png")
    end = run("echo", request_ref=ref_of(data, "image/png"), payload=grant(store))
    assert end.phase is Phase.SUCCEEDED, end.error
    assert seen["payload"] == (len(data), "image/png", sha(data), data)
    assert end.result is None
    assert end.result_ref == PayloadRef(
        bucket=BUCKET, key=RESULT_KEY, size=len(data), content_type="image/png", sha256=sha(data)
    )
    assert store.get(RESULT_KEY) == (data, "image/png")


@pytest.mark.parametrize("pool", ["thread", "process"])
def test_a_blob_of_an_open_file_is_streamed_to_the_result_url(store: Store, pool: str) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one chunk
    store.put(REQUEST_KEY, data, "application/octet-stream")
    end = run(
        "file",
        pool=pool,
        request_ref=ref_of(data, "application/octet-stream"),
        payload=grant(store),
    )
    assert end.phase is Phase.SUCCEEDED, end.error
    assert end.result_ref is not None
    assert (end.result_ref.size, end.result_ref.sha256) == (len(data), sha(data))
    assert store.get(RESULT_KEY) == (data, "application/x-copy")


def test_a_blob_of_a_pipe_is_spooled_then_stored(store: Store) -> None:
    end = run("pipe", payload=grant(store, request=False))
    assert end.phase is Phase.SUCCEEDED, end.error
    assert store.get(RESULT_KEY) == (b"piped" * 100, "text/plain")
    assert end.result_ref is not None and end.result_ref.size == 500


def test_a_json_result_over_the_threshold_is_stored_as_json(store: Store) -> None:
    end = run("big-json", request={"n": 5000}, payload=grant(store, request=False))
    assert end.phase is Phase.SUCCEEDED, end.error
    body, content_type = store.get(RESULT_KEY)
    assert (json.loads(body), content_type) == ({"text": "x" * 5000}, "application/json")
    assert end.result_ref is not None and end.result_ref.is_json
    assert end.result_ref.sha256 == sha(body)

    small = run("big-json", request={"n": 10}, payload=grant(store, request=False))
    assert (small.result, small.result_ref) == ({"text": "x" * 10}, None)


def test_bytes_are_stored_as_octet_stream(store: Store) -> None:
    end = run("raw", payload=grant(store, request=False))
    assert end.phase is Phase.SUCCEEDED, end.error
    assert store.get(RESULT_KEY) == (b"\x00\xff" * 1000, "application/octet-stream")


def test_a_request_whose_bytes_differ_from_its_ref_fails_before_the_handler(
    store: Store,
) -> None:
    data = b"the real bytes"
    store.put(REQUEST_KEY, data, "text/plain")
    seen.pop("never", None)
    wrong = ref_of(data, "text/plain", sha256=sha(b"other bytes"))
    end = run("never", request_ref=wrong, payload=grant(store))
    assert end.phase is Phase.ERROR
    assert end.error is not None and end.error.reason == "RequestChecksumMismatch"
    assert sha(b"other bytes") in end.error.message and sha(data) in end.error.message
    assert "never" not in seen


def test_store_errors_and_cut_transfers_are_retried_and_counted(store: Store) -> None:
    data = os.urandom(2 * 1024 * 1024)
    store.put(REQUEST_KEY, data, "application/octet-stream")
    store.faults.extend(
        [("status", 503, "<Error><Code>SlowDown</Code></Error>"), ("truncate", 1000), ("drop",)]
    )
    with StubBroker(app, payload_retry_seconds=10) as broker:
        task = broker.enqueue(
            "echo", request_ref=ref_of(data, "application/octet-stream"), payload=grant(store)
        )
        end = broker.result(task, 30)
        metrics = broker.metrics
    assert end.phase is Phase.SUCCEEDED, end.error
    assert store.requests.count(("GET", f"/bucket/{REQUEST_KEY}")) == 4  # 3 faults, 1 whole
    assert store.get(RESULT_KEY)[0] == data
    name = "asynctask_worker_payload_retries_total"
    assert metrics.value(name, queue="echo", direction="download") == 3
    assert metrics.value(name, queue="echo", direction="upload") == 0
    for direction in ("download", "upload"):
        moved = metrics.value(
            "asynctask_worker_payload_bytes_total", queue="echo", direction=direction
        )
        assert moved == len(data), direction


def test_a_store_down_past_the_bound_ends_in_a_clear_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = PayloadGrant(
        result_url=f"http://127.0.0.1:{port}/bucket/{RESULT_KEY}",
        result_bucket=BUCKET,
        result_key=RESULT_KEY,
    )
    end = run("raw", retry=1.0, payload=down)
    assert end.phase is Phase.ERROR
    assert end.error is not None and end.error.reason == "ResultUploadFailed"
    assert "ConnectionRefusedError" in end.error.message
    assert "ASYNCTASK_WORKER_PAYLOAD_RETRY_SECONDS" in end.error.message


def test_a_result_file_that_cannot_be_read_fails_at_once_without_a_put(store: Store) -> None:
    end = run("missing-file", payload=grant(store, request=False))
    assert end.phase is Phase.ERROR
    assert end.error is not None and end.error.reason == "ResultUploadFailed"
    assert "/nonexistent/result.bin" in end.error.message
    assert store.requests == []


def test_an_expired_url_is_not_retried(store: Store) -> None:
    store.faults.append(
        ("status", 403, "<Error><Code>AccessDenied</Code><Message>Request has expired</Message>")
    )
    end = run("raw", payload=grant(store, request=False))
    assert end.phase is Phase.ERROR
    assert end.error is not None and end.error.reason == "PayloadUrlExpired"
    assert "Request has expired" in end.error.message
    assert store.requests == [("PUT", f"/bucket/{RESULT_KEY}")]


def test_a_missing_request_object_fails_at_once(store: Store) -> None:
    end = run("never", request_ref=ref_of(b"x", "text/plain"), payload=grant(store))
    assert end.phase is Phase.ERROR
    assert end.error is not None and end.error.reason == "RequestDownloadFailed"
    assert "HTTP 404 NoSuchKey" in end.error.message


def test_a_stored_json_request_that_is_not_json_is_an_invalid_request(store: Store) -> None:
    store.put(REQUEST_KEY, b"{not json", "application/json")
    end = run("never", request_ref=ref_of(b"{not json", "application/json"), payload=grant(store))
    assert end.phase is Phase.FAILED
    assert end.error is not None and end.error.reason == "InvalidRequest"


def test_without_storage_a_blob_or_a_large_result_says_how_to_enable_it() -> None:
    blob = run("pipe")
    assert blob.phase is Phase.ERROR and blob.error is not None
    assert blob.error.reason == "PayloadStorageOff"
    assert "ASYNCTASK_S3_ENDPOINT" in blob.error.message

    raw = run("raw")
    assert raw.phase is Phase.ERROR and raw.error is not None
    assert raw.error.reason == "PayloadStorageOff", "bytes are never turned into text"

    big = run("big-json", request={"n": 70_000})
    assert big.phase is Phase.ERROR and big.error is not None
    assert big.error.reason == "ResultTooLarge"
    assert "ASYNCTASK_S3_ENDPOINT" in big.error.message


def test_a_blob_needs_a_binary_source(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="binary"), (tmp_path / "t").open("w") as text:
        Blob(text)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path or a binary file"):
        Blob(42)  # type: ignore[arg-type]
    assert Blob(io.BytesIO(b"x")).content_type == "application/octet-stream"
