"""The gateway's edge to S3-compatible object storage (docs/payloads.md).

boto3 (botocore) signs: presigned URLs are computed locally, without a call, so the bytes
themselves move over plain HTTP with aiohttp, streamed both ways and never held whole. The
few control calls (a delete of an upload whose task could not be created) run in a thread.
Credentials come from boto3's default chain (``AWS_ACCESS_KEY_ID``, IRSA...), so nothing here
is specific to one server: AWS S3 works the same.

Errors are told in two words: :class:`StoreUnavailable` (no answer, 5xx, a refusal of the
gateway's own credentials) and :class:`ObjectMissing` (404: the object is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import aiohttp
import boto3
from botocore.config import Config

from asynctask_gateway.settings import S3Settings

log = logging.getLogger(__name__)
#: Bytes read from the store or the caller at a time.
CHUNK = 1024 * 1024
#: An answer of the store's headers within this, and each read within this (the streamed
#: bytes over aiohttp; boto3's control calls take the shared bounds of
#: :meth:`StorageSettings.client_options`).
CONNECT_SECONDS, READ_SECONDS = 10.0, 60.0


class StoreUnavailable(Exception):
    """The store did not answer, or answered with an error that is not the caller's."""


class ObjectMissing(Exception):
    """The store has no such object (deleted, or removed by a lifecycle rule)."""


def s3_client(settings: S3Settings, endpoint: str | None = None) -> Any:
    """A boto3 S3 client of ``endpoint`` (default: the configured one)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint or settings.endpoint,
        config=Config(**settings.client_options()),
    )


class PayloadStore:
    """Presigned URLs, and streaming through them, for one bucket."""

    def __init__(self, settings: S3Settings) -> None:
        if not settings.bucket:
            raise ValueError("a payload store needs ASYNCTASK_S3_BUCKET")
        self.settings = settings
        self.bucket: str = settings.bucket
        self._s3 = s3_client(settings)
        public = settings.public_endpoint
        self._public = s3_client(settings, public) if public else self._s3
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(sock_connect=CONNECT_SECONDS, sock_read=READ_SECONDS)
            self._session = aiohttp.ClientSession(timeout=timeout, auto_decompress=False)
        return self._session

    def presign(
        self,
        operation: str,
        key: str,
        seconds: int,
        *,
        public: bool = False,
        content_type: str | None = None,
    ) -> str:
        """A URL for one ``get_object`` or ``put_object`` of ``key`` (local: no call)."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type is not None:
            params["ContentType"] = content_type
        client = self._public if public else self._s3
        url: str = client.generate_presigned_url(operation, Params=params, ExpiresIn=seconds)
        return url

    async def put(self, key: str, body: AsyncIterable[bytes], size: int, content_type: str) -> None:
        """One streaming PUT of ``size`` bytes (Content-Length, never chunked: S3 wants it)."""
        url = self.presign("put_object", key, 300, content_type=content_type)
        headers = {"Content-Length": str(size), "Content-Type": content_type}
        try:
            async with self._http().put(url, data=body, headers=headers) as resp:
                if resp.status >= 300:
                    text = (await resp.read())[:512].decode(errors="replace")
                    raise StoreUnavailable(f"the store answered {resp.status} to a PUT: {text}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise StoreUnavailable(f"the store cannot be reached: {exc}") from exc

    @contextlib.asynccontextmanager
    async def get(self, key: str) -> AsyncIterator[aiohttp.ClientResponse]:
        """The store's answer to a GET of ``key``, its body not read yet."""
        url = self.presign("get_object", key, 300)
        try:
            resp = await self._http().get(url)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise StoreUnavailable(f"the store cannot be reached: {exc}") from exc
        try:
            if resp.status == 404:
                raise ObjectMissing(f"no object {key!r} in the bucket {self.bucket!r}")
            if resp.status >= 300:
                raise StoreUnavailable(f"the store answered {resp.status} to a GET")
            yield resp
        finally:
            resp.release()

    async def delete(self, key: str) -> None:
        """Delete ``key``, best effort (the operator's sweep removes what this misses)."""
        try:
            await asyncio.to_thread(self._s3.delete_object, Bucket=self.bucket, Key=key)
        except Exception as exc:  # noqa: BLE001 - logged; the sweep is the backstop
            log.warning("could not delete the stored object %s: %s", key, exc)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
