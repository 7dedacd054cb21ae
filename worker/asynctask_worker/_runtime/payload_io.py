"""Moving a task's stored bytes: one streaming GET or PUT against a presigned URL.

Standard library only (``http.client``): the SDK adds no dependency and holds no storage
credentials; the operator presigned each URL for one object and one method. Bytes flow in
chunks of :data:`CHUNK_BYTES` between the socket and a local file, hashed on the way, so
memory does not grow with the size of the object.

What fails, and how:

* the store is unreachable, cuts the transfer short, or answers 5xx/429/408: the whole
  transfer is tried again after a doubling delay, for up to ``retry_seconds``; then
  :class:`TransferError` with the failure ``reason`` and the last cause;
* a 403 whose body (or the grant's ``expires_at``) says the URL expired:
  ``PayloadUrlExpired`` at once (only a new attempt brings new URLs);
* any other 4xx: the failure ``reason`` at once, with the store's code and message.

A cancelled task stops its transfer between chunks (:class:`TaskCancelled`).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import re
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, TypeVar
from urllib.parse import urlsplit

from asynctask_worker.backoff import Backoff, describe
from asynctask_worker.context import CANCELLED, TaskCancelled, TaskContext

log = logging.getLogger("asynctask.worker.payloads")

CHUNK_BYTES = 1024 * 1024
#: A socket that sees nothing for this long is a failed try (retried).
SOCKET_TIMEOUT_SECONDS = 30.0
#: The longest pause between tries.
MAX_DELAY_SECONDS = 8.0

URL_EXPIRED = "PayloadUrlExpired"

T = TypeVar("T")


class TransferError(Exception):
    """A transfer that cannot succeed (now): the task ends in ``Error`` with ``reason``."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass
class Moved:
    """What one attempt moved to and from object storage (the worker's payload metrics)."""

    downloaded: int = 0
    uploaded: int = 0
    download_retries: int = 0
    upload_retries: int = 0


class _Retryable(Exception):
    """A try that failed for a reason a later try may not meet (outage, 5xx, cut short)."""


class Transfer:
    """One task attempt's transfers: the cause names, the retry bound, the cancel flag."""

    def __init__(
        self,
        ctx: TaskContext,
        retry_seconds: float,
        expires_at: datetime | None = None,
        moved: Moved | None = None,
    ) -> None:
        self.ctx = ctx
        self.retry_seconds = retry_seconds
        self.expires_at = expires_at
        self.moved = moved if moved is not None else Moved()

    # the two transfers --------------------------------------------------------------------

    def download(self, url: str, dest: BinaryIO, *, fail: str, what: str) -> tuple[int, str]:
        """GET ``url`` into ``dest`` (truncated before each try): (bytes, hex sha256)."""

        def once() -> tuple[int, str]:
            dest.seek(0)
            dest.truncate()
            with _connection(url) as (conn, target):
                conn.request("GET", target)
                resp = self._response(conn, fail=fail, what=what)
                digest, size = hashlib.sha256(), 0
                while chunk := _read(resp):
                    self._check_cancelled()
                    digest.update(chunk)
                    _write(dest, chunk, fail)
                    size += len(chunk)
                announced = resp.getheader("Content-Length")
                if announced is not None and announced.isdigit() and int(announced) != size:
                    raise _Retryable(f"the store closed the body after {size} of {announced} bytes")
                return size, digest.hexdigest()

        size, sha256 = self._retrying(once, fail=fail, what=what, download=True)
        self.moved.downloaded += size
        return size, sha256

    def upload(
        self,
        url: str,
        opener: Callable[[], AbstractContextManager[BinaryIO]],
        size: int,
        content_type: str,
        *,
        fail: str,
        what: str,
    ) -> str:
        """PUT ``size`` bytes read from ``opener()`` (a new reader per try): hex sha256."""

        def once() -> str:
            digest, sent = hashlib.sha256(), 0
            with _connection(url) as (conn, target), _local(opener, fail) as source:
                try:
                    conn.putrequest("PUT", target, skip_accept_encoding=True)
                    conn.putheader("Content-Length", str(size))
                    conn.putheader("Content-Type", content_type)
                    conn.endheaders()
                    while sent < size and (chunk := _take(source, size - sent, fail)):
                        self._check_cancelled()
                        digest.update(chunk)
                        conn.send(chunk)
                        sent += len(chunk)
                except (OSError, http.client.HTTPException) as exc:
                    # The store may have answered early (an expired URL) and closed.
                    self._early_answer(conn, fail=fail, what=what)
                    raise _Retryable(describe(exc)) from exc
                if sent != size:
                    raise TransferError(
                        fail, f"{what}: the source ended after {sent} of {size} bytes"
                    )
                self._response(conn, fail=fail, what=what).read()
            return digest.hexdigest()

        sha256 = self._retrying(once, fail=fail, what=what, download=False)
        self.moved.uploaded += size
        return sha256

    # retries and answers ------------------------------------------------------------------

    def _retrying(self, once: Callable[[], T], *, fail: str, what: str, download: bool) -> T:
        deadline = time.monotonic() + self.retry_seconds
        backoff = Backoff(MAX_DELAY_SECONDS)
        tries = 0
        while True:
            tries += 1
            try:
                return once()
            except (OSError, http.client.HTTPException, _Retryable) as exc:
                cause = str(exc) if isinstance(exc, _Retryable) else describe(exc)
            delay = backoff.next()
            if time.monotonic() + delay > deadline:
                raise TransferError(
                    fail,
                    f"{what}: the object store failed {tries} tries over "
                    f"{self.retry_seconds:g}s (ASYNCTASK_WORKER_PAYLOAD_RETRY_SECONDS); "
                    f"last: {cause}",
                )
            log.warning("%s: %s; trying again in %.1fs", what, cause, delay)
            if download:
                self.moved.download_retries += 1
            else:
                self.moved.upload_retries += 1
            if self.ctx.wait_cancelled(delay):
                raise TaskCancelled(self.ctx.cancel_reason or CANCELLED)

    def _response(
        self, conn: http.client.HTTPConnection, *, fail: str, what: str
    ) -> http.client.HTTPResponse:
        resp = conn.getresponse()
        if 200 <= resp.status < 300:
            return resp
        body = resp.read(8192).decode("utf-8", "replace")
        cause = _store_error(resp.status, body)
        if resp.status >= 500 or resp.status in (408, 429):
            raise _Retryable(cause)
        if resp.status == 403 and self._expired(body):
            raise TransferError(
                URL_EXPIRED,
                f"{what}: the presigned URL expired ({cause}); the operator presigns new ones "
                "for each attempt (ASYNCTASK_S3_URL_SECONDS sets their lifetime)",
            )
        raise TransferError(fail, f"{what}: {cause}")

    def _early_answer(self, conn: http.client.HTTPConnection, *, fail: str, what: str) -> None:
        try:
            self._response(conn, fail=fail, what=what)
        except TransferError:
            raise
        except Exception:  # noqa: BLE001 - no answer to read: the send's error stands
            return

    def _expired(self, body: str) -> bool:
        if self.expires_at is not None and datetime.now(UTC) >= self.expires_at:
            return True
        return "expired" in body.lower()

    def _check_cancelled(self) -> None:
        if self.ctx.cancelled:
            raise TaskCancelled(self.ctx.cancel_reason or CANCELLED)


@contextmanager
def _connection(url: str) -> Iterator[tuple[http.client.HTTPConnection, str]]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TransferError("PayloadUrlInvalid", f"not an http(s) URL: {parts.scheme}://…")
    cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = cls(parts.hostname, parts.port, timeout=SOCKET_TIMEOUT_SECONDS)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        yield conn, target
    finally:
        conn.close()


def _read(resp: http.client.HTTPResponse) -> bytes:
    return resp.read(CHUNK_BYTES)


def _write(dest: BinaryIO, chunk: bytes, fail: str) -> None:
    try:
        dest.write(chunk)
    except OSError as exc:  # the local disk, not the store: retrying would not help
        raise TransferError(fail, f"could not write to local disk: {describe(exc)}") from exc


@contextmanager
def _local(opener: Callable[[], AbstractContextManager[BinaryIO]], fail: str) -> Iterator[BinaryIO]:
    """The upload's source, opened; a local file that cannot be opened is no store outage."""
    try:
        source = opener()
        file = source.__enter__()
    except OSError as exc:
        raise TransferError(fail, f"could not read the result: {describe(exc)}") from exc
    try:
        yield file
    finally:
        source.__exit__(None, None, None)


def _take(source: BinaryIO, left: int, fail: str) -> bytes:
    try:
        return source.read(min(CHUNK_BYTES, left))
    except OSError as exc:  # the local source, not the store: retrying would not help
        raise TransferError(fail, f"could not read the result: {describe(exc)}") from exc


def _store_error(status: int, body: str) -> str:
    """``HTTP 403 AccessDenied: Request has expired`` from an S3 error document."""
    code = re.search(r"<Code>([^<]{1,128})</Code>", body)
    message = re.search(r"<Message>([^<]{1,512})</Message>", body)
    detail = ": ".join(m.group(1) for m in (code, message) if m)
    return f"HTTP {status}" + (f" {detail}" if detail else "")
