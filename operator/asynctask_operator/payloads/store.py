"""The boto3 adapter of :class:`asynctask_operator.ports.PayloadStore` (imported only when
``ASYNCTASK_S3_ENDPOINT`` is set).

Why boto3: it is the reference S3 client, its presigner (SigV4) and its default
credential chain (environment, shared files, IRSA and instance roles) are what AWS S3
expects, and every S3-compatible server targets it; the operator makes few calls (delete,
list), so a blocking client run in a thread (:func:`asyncio.to_thread`) costs nothing that
matters. Errors of the store come out as :class:`errors.StoreError`.

Presigning, on the publish path, is a plain call: botocore computes a SigV4 signature
locally (parameter events, the endpoint rules, then the signer), and with static
credentials (keys from the environment or a Secret) it opens no connection. Credentials
that refresh (IRSA's web identity, an instance or container role, keys with an expiry) are
the exception: near their expiry botocore fetches new ones from STS or the metadata service
inside the presign, so with those a presign runs in a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import boto3
from botocore.config import Config as BotoConfig
from botocore.credentials import RefreshableCredentials
from botocore.exceptions import BotoCoreError, ClientError

from asynctask_operator.errors import StoreError
from asynctask_operator.payloads.settings import PayloadConfig
from asynctask_operator.ports import StoredObject

_OPERATIONS = {"GET": "get_object", "PUT": "put_object"}


class S3Store:
    def __init__(self, config: PayloadConfig) -> None:
        self.config = config
        session = boto3.session.Session()
        # The chain is resolved once (the client below takes the session's cached result).
        credentials = session.get_credentials()
        #: Whether a presign may fetch credentials (see the module's docstring).
        self.presign_may_fetch = isinstance(credentials, RefreshableCredentials)
        self._client: Any = session.client(
            "s3", endpoint_url=config.endpoint, config=BotoConfig(**config.client_options())
        )

    async def presign(self, method: Literal["GET", "PUT"], bucket: str, key: str) -> str:
        if self.presign_may_fetch:
            return await asyncio.to_thread(self._presign, method, bucket, key)
        return self._presign(method, bucket, key)  # a local signature: no I/O

    def _presign(self, method: Literal["GET", "PUT"], bucket: str, key: str) -> str:
        try:
            url: str = self._client.generate_presigned_url(
                _OPERATIONS[method],
                Params={"Bucket": bucket, "Key": key},
                ExpiresIn=self.config.url_seconds,
                HttpMethod=method,
            )
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"presigning {method} s3://{bucket}/{key}: {exc}") from exc
        return url

    async def delete(self, bucket: str, key: str) -> None:
        await asyncio.to_thread(self._call, "delete_object", Bucket=bucket, Key=key)

    async def list_page(
        self, bucket: str, prefix: str, after: str | None
    ) -> tuple[list[StoredObject], bool]:
        args: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix, "MaxKeys": 1000}
        if after:
            args["StartAfter"] = after
        page = await asyncio.to_thread(self._call, "list_objects_v2", **args)
        objects = [
            StoredObject(
                key=str(item["Key"]),
                size=int(item.get("Size") or 0),
                modified=item["LastModified"].timestamp(),
            )
            for item in page.get("Contents") or []
        ]
        return objects, bool(page.get("IsTruncated"))

    def _call(self, operation: str, **args: Any) -> Any:
        try:
            return getattr(self._client, operation)(**args)
        except (BotoCoreError, ClientError) as exc:
            raise StoreError(f"{operation} {args.get('Key') or args.get('Prefix')}: {exc}") from exc
