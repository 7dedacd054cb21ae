"""The gateway's payload store against the test bed's real S3 server: a streamed PUT with
its Content-Length (content type kept), a relayed GET checked against the ref, a corrupt
object refused before its last bytes, a missing object, the store down, and a delete."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterator

import pytest

from asynctask_gateway.payload_store import ObjectMissing, PayloadStore, StoreUnavailable
from asynctask_gateway.payload_streams import ChecksumMismatch, Counted, relay
from asynctask_gateway.settings import S3Settings
from asynctask_worker.payloads import PayloadRef
from testbed import S3Server

DATA = hashlib.sha256(b"seed").digest() * 100_000  # 3.2 MB: several chunks


async def chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for at in range(0, len(data), size):
        yield data[at : at + size]


@pytest.fixture
def store(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> PayloadStore:
    bucket = s3.create_bucket(f"t-{uuid.uuid4().hex[:8]}")
    for name, value in s3.env(bucket).items():
        monkeypatch.setenv(name, value)
    return PayloadStore(S3Settings())


def ref(key: str, data: bytes, bucket: str) -> PayloadRef:
    sha = hashlib.sha256(data).hexdigest()
    return PayloadRef(bucket=bucket, key=key, size=len(data), contentType="image/png", sha256=sha)


async def put_and_relay(store: PayloadStore, key: str) -> tuple[Counted, bytes, str]:
    counted = Counted(chunks(DATA), len(DATA))
    await store.put(key, counted, len(DATA), "image/png")
    out = bytearray()

    async def write(chunk: bytes) -> None:
        out.extend(chunk)

    async with store.get(key) as answer:
        content_type = answer.headers["Content-Type"]
        await relay(answer.content.iter_chunked(65536), write, ref(key, DATA, store.bucket))
    await store.close()
    return counted, bytes(out), content_type


def test_a_streamed_upload_comes_back_whole_and_checked(store: PayloadStore, s3: S3Server) -> None:
    key = "asynctask/ns/uploads/one"
    counted, out, content_type = asyncio.run(put_and_relay(store, key))
    assert counted.complete and counted.sha256.hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert out == DATA and content_type == "image/png"
    assert (s3.data_dir / store.bucket / key).read_bytes() == DATA
    asyncio.run(store.delete(key))
    assert not (s3.data_dir / store.bucket / key).exists()


def test_a_corrupt_object_is_refused_before_its_last_bytes(
    store: PayloadStore, s3: S3Server
) -> None:
    key = "asynctask/ns/uid/result"
    asyncio.run(put_and_relay(store, key))
    stored = s3.data_dir / store.bucket / key
    stored.write_bytes(b"X" + DATA[1:])  # flipped at rest, same size
    written: list[bytes] = []

    async def read() -> None:
        async def write(chunk: bytes) -> None:
            written.append(chunk)

        try:
            async with store.get(key) as answer:
                chunks_in = answer.content.iter_chunked(65536)
                await relay(chunks_in, write, ref(key, DATA, store.bucket))
        finally:
            await store.close()

    with pytest.raises(ChecksumMismatch, match="sha256"):
        asyncio.run(read())
    assert sum(map(len, written)) < len(DATA)


def test_a_missing_object_and_a_store_that_is_down_are_told_apart(
    store: PayloadStore, s3: S3Server
) -> None:
    async def get(key: str) -> None:
        async with store.get(key):
            pass

    async def down() -> None:
        with pytest.raises(StoreUnavailable, match="cannot be reached"):
            await get("asynctask/ns/none")
        with pytest.raises(StoreUnavailable):
            await store.put("k", chunks(b"abc"), 3, "text/plain")
        await store.close()

    async def missing() -> None:
        with pytest.raises(ObjectMissing):
            await get("asynctask/ns/none")
        await store.close()

    asyncio.run(missing())
    s3.stop_server()
    try:
        asyncio.run(down())
    finally:
        s3.start_server()
