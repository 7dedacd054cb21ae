"""A task's bytes in object storage: the request fetched before its handler runs, the result
stored after it returns (docs/payloads.md, docs/protocol.md#large-payloads).

Before the handler: a task message with ``request_ref`` is downloaded through the grant's
``request_url`` to a file in the attempt's :class:`Workspace`, its size and sha256 checked
against the ref. A JSON request is parsed and handed over as today; any other type as a
:class:`~asynctask_worker.blobs.Payload` (the file).

After the handler (:func:`store_result`): a :class:`~asynctask_worker.blobs.Blob`, a
``Payload``, ``bytes``, or a JSON value over the grant's ``threshold_bytes`` is PUT to the
grant's ``result_url`` and reported as ``result_ref``; a smaller JSON value stays inline.
Without a grant (no storage configured) today's limits stand, with errors saying how to
configure storage.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from asynctask_worker._runtime import outcome
from asynctask_worker._runtime.outcome import Outcome
from asynctask_worker._runtime.payload_io import CHUNK_BYTES, Moved, Transfer, TransferError
from asynctask_worker.blobs import Blob, Payload
from asynctask_worker.context import TaskContext
from asynctask_worker.messages import TaskMessage
from asynctask_worker.payloads import (
    BINARY_CONTENT_TYPE,
    JSON_CONTENT_TYPE,
    PayloadGrant,
    PayloadRef,
)

DOWNLOAD_FAILED = "RequestDownloadFailed"
CHECKSUM_MISMATCH = "RequestChecksumMismatch"
UPLOAD_FAILED = "ResultUploadFailed"

Opener = Callable[[], AbstractContextManager[BinaryIO]]


class RequestNotJson(ValueError):
    """A stored request said ``application/json`` but is not JSON: the request is invalid."""


@dataclass(frozen=True)
class PayloadPlan:
    """What one attempt has in object storage (picklable: it crosses to a task's process)."""

    request_ref: PayloadRef | None
    grant: PayloadGrant | None
    retry_seconds: float = 60.0
    #: A folder made and removed by the caller (process mode: the parent, which outlives
    #: a killed child); None: the attempt makes and removes its own when it needs one.
    workdir: str | None = None

    @property
    def result_target(self) -> PayloadGrant | None:
        """The grant, if it can store a result (URL, bucket and key all given)."""
        g = self.grant
        return g if g is not None and g.result_url and g.result_bucket and g.result_key else None


def plan_of(msg: TaskMessage, retry_seconds: float) -> PayloadPlan | None:
    """The attempt's plan; None when the task has nothing in storage and no grant."""
    if msg.request_ref is None and msg.payload is None:
        return None
    return PayloadPlan(msg.request_ref, msg.payload, retry_seconds)


class Workspace:
    """One attempt's temporary folder (made on first use) and what it moved."""

    def __init__(self, given: str | None = None) -> None:
        self._given = Path(given) if given else None
        self._made: Path | None = None
        self.moved = Moved()

    def folder(self) -> Path:
        if self._given is not None:
            return self._given
        if self._made is None:
            self._made = Path(tempfile.mkdtemp(prefix="asynctask-payload-"))
        return self._made

    def close(self) -> None:
        if self._made is not None:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None


def fetch_request(plan: PayloadPlan, ctx: TaskContext, work: Workspace) -> Any:
    """Download and check the stored request; the value a handler gets (JSON or Payload)."""
    ref = plan.request_ref
    assert ref is not None
    url = plan.grant.request_url if plan.grant is not None else None
    where = f"the request object {ref.bucket}/{ref.key}"
    if not url:
        raise TransferError(
            DOWNLOAD_FAILED,
            f"the task names {where} (requestRef) but its message carries no URL to fetch "
            "it: is object storage configured on the operator (ASYNCTASK_S3_ENDPOINT)?",
        )
    path = work.folder() / "request"
    expires = plan.grant.expires_at if plan.grant else None
    transfer = Transfer(ctx, plan.retry_seconds, expires, work.moved)
    with path.open("w+b") as file:
        size, sha256 = transfer.download(url, file, fail=DOWNLOAD_FAILED, what=f"GET {where}")
    if size != ref.size or sha256 != ref.sha256:
        raise TransferError(
            CHECKSUM_MISMATCH,
            f"{where} holds {size} bytes with sha256 {sha256}; its requestRef says "
            f"{ref.size} bytes with sha256 {ref.sha256}: refusing to run on other bytes",
        )
    if not ref.is_json:
        return Payload(path, ref)
    try:
        with path.open("rb") as file:
            return json.load(file)
    except (ValueError, RecursionError) as exc:
        raise RequestNotJson(f"{where} is {ref.content_type} but not JSON: {exc}") from exc


def store_result(
    value: Any, plan: PayloadPlan | None, ctx: TaskContext, work: Workspace
) -> Outcome:
    """The handler's value as the attempt's outcome, stored first if it must be."""
    grant = plan.result_target if plan is not None else None
    if isinstance(value, Payload):
        value = Blob.of(value)
    if isinstance(value, Blob):
        if grant is None or plan is None:
            return outcome.storage_off(f"a {type(value).__name__}")
        with _source(value, work) as (opener, size):
            return _put(plan, grant, ctx, work, opener, size, value.content_type)
    if isinstance(value, bytes | bytearray | memoryview):
        if grant is None or plan is None:
            return outcome.storage_off("bytes")
        data = bytes(value)
        return _put(plan, grant, ctx, work, _bytes_opener(data), len(data), BINARY_CONTENT_TYPE)
    if plan is None or grant is None:
        return outcome.succeeded(value)
    encoded = outcome.encode_json(value)
    if isinstance(encoded, Outcome):
        return encoded
    result, data = encoded
    if len(data) <= min(grant.threshold_bytes, outcome.MAX_RESULT_BYTES):
        return outcome.inline(result)
    return _put(plan, grant, ctx, work, _bytes_opener(data), len(data), JSON_CONTENT_TYPE)


def _put(
    plan: PayloadPlan,
    grant: PayloadGrant,
    ctx: TaskContext,
    work: Workspace,
    opener: Opener,
    size: int,
    content_type: str,
) -> Outcome:
    assert grant.result_url and grant.result_bucket and grant.result_key
    where = f"the result object {grant.result_bucket}/{grant.result_key}"
    transfer = Transfer(ctx, plan.retry_seconds, grant.expires_at, work.moved)
    sha256 = transfer.upload(
        grant.result_url, opener, size, content_type, fail=UPLOAD_FAILED, what=f"PUT {where}"
    )
    ref = PayloadRef(
        bucket=grant.result_bucket,
        key=grant.result_key,
        size=size,
        content_type=content_type,
        sha256=sha256,
    )
    return outcome.stored(ref)


def _bytes_opener(data: bytes) -> Opener:
    return lambda: io.BytesIO(data)


@contextlib.contextmanager
def _source(blob: Blob, work: Workspace) -> Iterator[tuple[Opener, int]]:
    """How to read a Blob from its start for each try, and its size; closes its file."""
    if blob.path is not None:
        path = blob.path
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise TransferError(UPLOAD_FAILED, f"the result file {path}: {exc}") from exc
        yield (lambda: path.open("rb")), size
        return
    file = blob.file
    assert file is not None
    try:
        if file.seekable():
            start = file.tell()
            size = file.seek(0, io.SEEK_END) - start
            yield _rewinding(file, start), size
        else:
            spooled = work.folder() / "result"
            with spooled.open("wb") as out:
                shutil.copyfileobj(file, out, CHUNK_BYTES)
            yield (lambda: spooled.open("rb")), spooled.stat().st_size
    finally:
        file.close()


def _rewinding(file: BinaryIO, start: int) -> Opener:
    @contextlib.contextmanager
    def opener() -> Iterator[BinaryIO]:
        file.seek(start)
        yield file

    return opener
