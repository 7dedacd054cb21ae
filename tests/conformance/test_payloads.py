"""The conformance case "stored payloads" (docs/conformance.md, docs/payloads.md): with object
storage on in the suite's operator, a worker of either SDK fetches a stored request through
its grant (binary as a file, JSON parsed), checks its sha256, and stores a streamed result
and JSON over the threshold by the grant's PUT URL, reported as ``status.resultRef``; with
the store down, it retries for its bound, then ends the task ``Error``, ``ResultUploadFailed``.

Judged by the AsyncTask status and the bucket's objects, read with boto3 as any reader would.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import pytest

from asynctask_worker.payloads import DEFAULT_PREFIX, PayloadRef, result_key, upload_key
from testbed import ControlPlane
from testbed.s3 import S3Server
from tests.conformance.harness import PAYLOAD_RETRY_SECONDS, Broker, ConformanceWorker, pattern
from tests.e2e.tasks import create, get, wait_phase

pytestmark = pytest.mark.e2e

BINARY = "application/octet-stream"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_stored_payloads(
    control_plane: ControlPlane,
    cf_ns: str,
    worker: ConformanceWorker,
    broker: Broker,
    s3: S3Server,
    conformance_bucket: str,
) -> None:
    client, bucket = s3.client(), conformance_bucket

    def upload(data: bytes, content_type: str, **override: Any) -> dict[str, object]:
        """Put a request object where a producer puts one; its requestRef."""
        key = upload_key(DEFAULT_PREFIX, cf_ns)
        client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type)
        ref = PayloadRef(
            bucket=bucket, key=key, size=len(data), content_type=content_type, sha256=sha(data)
        )
        return {**ref.document(), **override}

    def stored(name: str) -> tuple[dict[str, Any], bytes]:
        """The resultRef of a Succeeded task and the bytes of its object, checked against it."""
        obj = get(control_plane, cf_ns, name)
        st = obj["status"]
        assert st.get("result") is None and st["attempts"] == 1, st
        ref = st["resultRef"]
        assert ref["bucket"] == bucket, ref
        assert ref["key"] == result_key(DEFAULT_PREFIX, cf_ns, obj["metadata"]["uid"]), ref
        data: bytes = client.get_object(Bucket=bucket, Key=ref["key"])["Body"].read()
        assert (len(data), sha(data)) == (ref["size"], ref["sha256"]), ref
        return ref, data

    binary = os.urandom(3 * 1024 * 1024 + 7)
    document = {"rows": [[i, f"row {i}", i / 7] for i in range(4000)], "text": "héllo"}
    blob_size = 5 * 1024 * 1024 + 3
    create(
        control_plane,
        cf_ns,
        "digest",
        queue="conformance.digest",
        requestRef=upload(binary, BINARY),
    )
    create(
        control_plane,
        cf_ns,
        "tampered",
        queue="conformance.digest",
        requestRef=upload(binary, BINARY, sha256=sha(b"other bytes")),
        retries=0,
    )
    json_ref = upload(json.dumps(document).encode(), "application/json")
    create(control_plane, cf_ns, "json", queue="conformance.echo", requestRef=json_ref)
    create(control_plane, cf_ns, "blob", queue="conformance.blob", request={"bytes": blob_size})
    create(control_plane, cf_ns, "big", queue="conformance.big", request={"bytes": 70_000})

    # A binary request reaches the handler as a file with the uploaded bytes; a small JSON
    # result stays inline.
    st = wait_phase(control_plane, cf_ns, "digest", "Succeeded", timeout=120)
    assert st["result"] == {"sha256": sha(binary), "size": len(binary)}, st
    assert "resultRef" not in st, st
    # Bytes that differ from the requestRef's sha256 never reach a handler.
    st = wait_phase(control_plane, cf_ns, "tampered", "Error", timeout=120)
    assert st["error"]["reason"] == "RequestChecksumMismatch", st["error"]
    assert sha(binary) in st["error"]["message"], st["error"]  # it says what it found
    # A stored JSON request arrives parsed; echoed back, it is over the threshold: stored JSON.
    wait_phase(control_plane, cf_ns, "json", "Succeeded", timeout=120)
    ref, data = stored("json")
    assert ref["contentType"].startswith("application/json"), ref
    assert json.loads(data) == document
    # A streamed binary result is stored as it is, by one PUT.
    wait_phase(control_plane, cf_ns, "blob", "Succeeded", timeout=120)
    ref, data = stored("blob")
    assert (ref["contentType"], ref["size"]) == (BINARY, blob_size), ref
    assert data == pattern(blob_size)
    # JSON over the grant's threshold (65536) is stored, not refused as ResultTooLarge.
    wait_phase(control_plane, cf_ns, "big", "Succeeded", timeout=120)
    ref, data = stored("big")
    assert json.loads(data) == {"data": "x" * 70_000}, ref
    for queue in ("conformance.digest", "conformance.echo", "conformance.blob"):
        assert broker.ready(queue) == 0, queue

    # The store down when the result is ready: retried for the worker's bound, then a clear
    # Error (the bound is ASYNCTASK_WORKER_PAYLOAD_RETRY_SECONDS, 4 s here).
    s3.stop_server()
    try:
        create(
            control_plane,
            cf_ns,
            "outage",
            queue="conformance.blob",
            request={"bytes": 1024},
            retries=0,
        )
        st = wait_phase(control_plane, cf_ns, "outage", "Error", timeout=60 + PAYLOAD_RETRY_SECONDS)
    finally:
        s3.start_server()
    assert st["error"]["reason"] == "ResultUploadFailed", st["error"]
    assert st["attempts"] == 1 and "resultRef" not in st, st
