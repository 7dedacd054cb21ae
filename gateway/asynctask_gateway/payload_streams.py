"""Bytes on their way between a caller and the store, checked as they pass (no I/O here:
the handlers hand in the chunks and the writer; unit-tested directly).

* :class:`Counted`: a caller's upload, hashed and counted while it streams, so the ref the
  gateway answers names exactly the bytes the store got; a body shorter or longer than its
  Content-Length is an error, not a truncated object.
* :func:`relay`: a stored result to the caller, hashed while it streams; the last chunk is
  held back until the digest is known, so bytes that do not match the ref's sha256 (or its
  size) never make a complete answer (the connection is cut before the last chunk, and the
  caller's Content-Length check fails): never silent corruption.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable

from asynctask_worker.payloads import PayloadRef


class ChecksumMismatch(Exception):
    """The stored bytes are not those the ref names (size or sha256)."""


class BodyIncomplete(Exception):
    """The caller's body ended before (or ran past) its Content-Length."""


def repr_digest(sha256_hex: str) -> str:
    """RFC 9530's ``Repr-Digest`` value of a sha256 given in hex: ``sha-256=:<base64>:``."""
    return f"sha-256=:{base64.b64encode(bytes.fromhex(sha256_hex)).decode()}:"


class Counted:
    """An async iterable over ``chunks`` that hashes and counts what it hands on, and fails
    (:class:`BodyIncomplete`) if they do not add up to ``size``. ``failure`` keeps the
    caller-side error, which an HTTP client may wrap in one of its own."""

    def __init__(self, chunks: AsyncIterable[bytes], size: int) -> None:
        self.chunks, self.size = chunks, size
        self.count = 0
        self.sha256 = hashlib.sha256()
        self.failure: BaseException | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.chunks:
                self.count += len(chunk)
                if self.count > self.size:
                    raise BodyIncomplete(f"the body is longer than its {self.size} bytes")
                self.sha256.update(chunk)
                yield chunk
        except Exception as exc:
            self.failure = exc
            raise
        if self.count != self.size:
            self.failure = BodyIncomplete(
                f"the body ended after {self.count} of its {self.size} bytes"
            )
            raise self.failure

    @property
    def complete(self) -> bool:
        return self.failure is None and self.count == self.size


async def relay(
    chunks: AsyncIterable[bytes], write: Callable[[bytes], Awaitable[None]], ref: PayloadRef
) -> int:
    """Write ``chunks`` on, the last one only once size and sha256 match ``ref``; raises
    :class:`ChecksumMismatch` (with the last chunk unwritten) otherwise. The bytes written."""
    sha256, count = hashlib.sha256(), 0
    held: bytes | None = None
    async for chunk in chunks:
        if not chunk:
            continue
        count += len(chunk)
        if count > ref.size:
            raise ChecksumMismatch(f"the stored object is larger than the ref's {ref.size} bytes")
        sha256.update(chunk)
        if held is not None:
            await write(held)
        held = chunk
    if count != ref.size:
        raise ChecksumMismatch(f"the stored object has {count} bytes, the ref says {ref.size}")
    if sha256.hexdigest() != ref.sha256:
        raise ChecksumMismatch(
            f"the stored object's sha256 is {sha256.hexdigest()}, the ref says {ref.sha256}"
        )
    if held is not None:
        await write(held)
    return count
