"""Bytes between a caller and the store, checked as they pass: an upload counted and hashed
against its Content-Length, a stored result relayed with its last chunk held back until its
size and sha256 match the ref, and the RFC 9530 digest header."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Iterable

import pytest

from asynctask_gateway.payload_streams import (
    BodyIncomplete,
    ChecksumMismatch,
    Counted,
    relay,
    repr_digest,
)
from asynctask_worker.payloads import PayloadRef

CHUNKS = [b"a" * 1000, b"b" * 1000, b"tail"]
DATA = b"".join(CHUNKS)


async def feed(chunks: Iterable[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def ref_of(data: bytes, **changes: object) -> PayloadRef:
    fields: dict[str, object] = {
        "bucket": "tasks",
        "key": "asynctask/ns/uid/result",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    return PayloadRef.model_validate({**fields, **changes})


async def drain(counted: Counted) -> bytes:
    return b"".join([chunk async for chunk in counted])


def test_an_upload_is_counted_and_hashed_as_it_passes() -> None:
    counted = Counted(feed(CHUNKS), len(DATA))
    assert asyncio.run(drain(counted)) == DATA
    assert counted.complete and counted.sha256.hexdigest() == hashlib.sha256(DATA).hexdigest()


def test_a_body_shorter_than_its_content_length_fails() -> None:
    counted = Counted(feed(CHUNKS), len(DATA) + 1)
    with pytest.raises(BodyIncomplete, match=f"after {len(DATA)} of"):
        asyncio.run(drain(counted))
    assert not counted.complete and isinstance(counted.failure, BodyIncomplete)


def test_a_body_longer_than_its_content_length_fails_before_passing_the_excess() -> None:
    counted = Counted(feed(CHUNKS), 1500)
    with pytest.raises(BodyIncomplete, match="longer"):
        asyncio.run(drain(counted))
    assert not counted.complete


def test_a_failing_caller_is_remembered_as_the_failure() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"x"
        raise ConnectionResetError("caller hung up")

    counted = Counted(broken(), 10)
    with pytest.raises(ConnectionResetError):
        asyncio.run(drain(counted))
    assert isinstance(counted.failure, ConnectionResetError) and not counted.complete


def run_relay(chunks: list[bytes], ref: PayloadRef) -> tuple[list[bytes], BaseException | None]:
    written: list[bytes] = []

    async def write(chunk: bytes) -> None:
        written.append(chunk)

    try:
        asyncio.run(relay(feed(chunks), write, ref))
    except ChecksumMismatch as exc:
        return written, exc
    return written, None


def test_matching_bytes_are_relayed_whole() -> None:
    written, error = run_relay(CHUNKS, ref_of(DATA))
    assert error is None and b"".join(written) == DATA


def test_a_wrong_sha256_withholds_the_last_chunk() -> None:
    written, error = run_relay(CHUNKS, ref_of(DATA, sha256="0" * 64))
    assert isinstance(error, ChecksumMismatch) and "sha256" in str(error)
    assert b"".join(written) == DATA[: -len(CHUNKS[-1])]


def test_a_shorter_object_withholds_the_last_chunk() -> None:
    written, error = run_relay(CHUNKS[:2], ref_of(DATA))
    assert isinstance(error, ChecksumMismatch) and "bytes" in str(error)
    assert len(b"".join(written)) < len(DATA)


def test_a_larger_object_stops_at_the_refs_size() -> None:
    written, error = run_relay([*CHUNKS, b"more"], ref_of(DATA))
    assert isinstance(error, ChecksumMismatch) and "larger" in str(error)
    assert len(b"".join(written)) < len(DATA)


def test_an_empty_object_matches_an_empty_ref() -> None:
    written, error = run_relay([], ref_of(b""))
    assert error is None and written == []


def test_repr_digest_is_rfc_9530s_sha_256() -> None:
    digest = hashlib.sha256(DATA)
    value = repr_digest(digest.hexdigest())
    assert value == f"sha-256=:{base64.b64encode(digest.digest()).decode()}:"
