"""Large payloads: what the wire and the AsyncTask object carry when a request or a result
lives in S3-compatible object storage instead of the object itself (docs/payloads.md).

* :class:`PayloadRef` names one stored object: its bucket, key, size, content type and
  sha256. It is ``spec.requestRef`` and ``status.resultRef`` of an AsyncTask, and the
  ``request_ref`` of a task message and the ``result_ref`` of a status message. It is always
  written with camelCase names (``contentType``), on the wire as in the object.
* :class:`PayloadGrant` is what the operator hands a worker in a task message: presigned
  URLs scoped to one object and one method each (GET the request, PUT the result), and the
  size above which a result goes to storage. Workers hold no storage credentials.

:class:`StorageSettings` is the store's configuration (``ASYNCTASK_S3_*``), shared by the
operator and the gateway.

Keys are the operator's to give: results at ``<prefix><namespace>/<uid>/result``,
uploaded requests at ``<prefix><namespace>/uploads/<id>`` (:func:`result_key`,
:func:`upload_key`). The operator refuses a ``requestRef`` outside the task's namespace.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The content type of a JSON value offloaded as a whole (a request or a result that a
#: handler sees as a plain value, as below the threshold).
JSON_CONTENT_TYPE: Final = "application/json"
#: The content type of bytes with no stated type.
BINARY_CONTENT_TYPE: Final = "application/octet-stream"
#: The default size in bytes above which a request or result is stored, not inlined.
DEFAULT_THRESHOLD_BYTES: Final = 64 * 1024
#: The default key prefix of every object the project writes.
DEFAULT_PREFIX: Final = "asynctask/"

#: The longest a SigV4 presigned URL may live (7 days).
MAX_URL_SECONDS: Final = 7 * 24 * 3600
#: The S3 clients' bounds (:meth:`StorageSettings.client_options`). The operator's and the
#: gateway's boto3 clients only sign and make small control calls (delete an object, list
#: a page of 1,000 keys); the bytes move over presigned URLs. So: 3 attempts in all
#: (botocore's "standard" mode default; the calls are idempotent, so a retry is safe. It
#: is ``total_max_attempts``: botocore's ``max_attempts`` counts retries, so the operator's
#: old 3 meant 4 attempts), 5 s to connect (a store that takes longer is down: the sweep or
#: the delete should fail and move on) and 30 s per read (a list page, with room for a slow
#: store).
CLIENT_ATTEMPTS: Final = 3
CLIENT_CONNECT_SECONDS: Final = 5.0
CLIENT_READ_SECONDS: Final = 30.0

_SHA256 = r"^[0-9a-f]{64}$"
#: An S3 endpoint: scheme and host (and port), no path.
ENDPOINT_PATTERN: Final = r"^https?://[^\s/?#@]+/?$"


class PayloadRef(BaseModel):
    """One stored object (``spec.requestRef``, ``status.resultRef``)."""

    # serialize_by_alias: camelCase in every dump, the wire's too (``encode`` of a message
    # that holds a ref), as the JSON Schemas say; ``populate_by_name`` reads either.
    model_config = ConfigDict(
        frozen=True, populate_by_name=True, serialize_by_alias=True, extra="ignore"
    )

    bucket: Annotated[str, Field(min_length=3, max_length=63)]
    key: Annotated[str, Field(min_length=1, max_length=1024)]
    size: Annotated[int, Field(ge=0)]
    content_type: Annotated[str, Field(alias="contentType", min_length=1, max_length=255)] = (
        BINARY_CONTENT_TYPE
    )
    sha256: Annotated[str, Field(pattern=_SHA256)]

    @property
    def is_json(self) -> bool:
        """A JSON value as a whole: handlers and readers see the parsed value."""
        return self.content_type.split(";")[0].strip().lower() == JSON_CONTENT_TYPE

    def document(self) -> dict[str, object]:
        """As written in the object and on the wire (camelCase)."""
        return self.model_dump(by_alias=True, mode="json")


class PayloadGrant(BaseModel):
    """Presigned URLs for one task attempt (the ``payload`` of a task message)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    #: GET of the task's ``request_ref`` object; absent when the request is inline.
    request_url: str | None = None
    #: PUT of the task's result object (``result_bucket``/``result_key``).
    result_url: str | None = None
    result_bucket: str | None = None
    result_key: str | None = None
    #: A result whose JSON (or bytes) is larger than this goes to ``result_url``.
    threshold_bytes: Annotated[int, Field(ge=0)] = DEFAULT_THRESHOLD_BYTES
    #: When the URLs stop working.
    expires_at: datetime | None = None


def result_key(prefix: str, namespace: str, uid: str) -> str:
    """The one key of a task's stored result: a retry overwrites it, never adds one."""
    return f"{prefix}{namespace}/{uid}/result"


def upload_key(prefix: str, namespace: str, upload_id: str | None = None) -> str:
    """A key for a request uploaded before its task exists (its uid is not known yet)."""
    return f"{prefix}{namespace}/uploads/{upload_id or uuid.uuid4().hex}"


def namespace_prefix(prefix: str, namespace: str) -> str:
    """Every key of one namespace starts with this (the check on ``spec.requestRef``)."""
    return f"{prefix}{namespace}/"


class StorageSettings(BaseSettings):
    """``ASYNCTASK_S3_*``: where large requests and results are stored, as the operator and
    the gateway read it (each extends it with its own settings; workers read none of it:
    they get presigned URLs). Unset ``endpoint``: offload is off and today's size limits
    stand. Credentials are not settings: boto3's default chain reads them
    (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` from a Secret, or a role such as IRSA)."""

    model_config = SettingsConfigDict(env_prefix="ASYNCTASK_S3_", extra="ignore")

    endpoint: Annotated[str | None, Field(pattern=ENDPOINT_PATTERN)] = Field(
        None,
        description="The S3 endpoint URL (https://s3.eu-west-1.amazonaws.com, or a "
        "compatible server's). Unset: large payloads are off and today's size limits stand.",
    )
    bucket: Annotated[str | None, Field(min_length=3, max_length=63)] = Field(
        None, description="The bucket of every stored request and result."
    )
    region: str = Field("us-east-1", min_length=1, description="The bucket's region (SigV4).")
    prefix: str = Field(
        DEFAULT_PREFIX,
        max_length=256,
        description="Every key the project writes starts with this ('' or ending in '/').",
    )
    path_style: bool = Field(
        True, description="Path-style addressing (endpoint/bucket/key), as most servers need."
    )
    threshold_bytes: int = Field(
        DEFAULT_THRESHOLD_BYTES,
        ge=0,
        description="A request or result larger than this (as JSON, or any bytes) is stored.",
    )
    url_seconds: int = Field(
        86400,
        ge=60,
        le=MAX_URL_SECONDS,
        description="How long a worker's presigned URLs work (from the task's publish: a "
        "task queued longer than this fails with PayloadUrlExpired).",
    )

    @field_validator("endpoint", "bucket", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        if value and not value.endswith("/"):
            raise ValueError("the prefix must be empty or end with '/'")
        if value.startswith("/"):
            raise ValueError("the prefix must not start with '/'")
        return value

    @model_validator(mode="after")
    def _bucket_with_endpoint(self) -> StorageSettings:
        if self.endpoint and not self.bucket:
            raise ValueError("ASYNCTASK_S3_ENDPOINT is set but ASYNCTASK_S3_BUCKET is not")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint and self.bucket)

    def client_options(self) -> dict[str, Any]:
        """The keyword arguments of botocore's ``Config`` for this store, one set for the
        operator and the gateway (this package imports neither boto3 nor botocore): SigV4,
        the region, ``path`` addressing if ``path_style`` else ``virtual`` (the bucket in
        the host name, as the setting says; never botocore's guess, ``auto``), and the
        bounds above."""
        return {
            "signature_version": "s3v4",
            "region_name": self.region,
            "s3": {"addressing_style": "path" if self.path_style else "virtual"},
            "retries": {"total_max_attempts": CLIENT_ATTEMPTS, "mode": "standard"},
            "connect_timeout": CLIENT_CONNECT_SECONDS,
            "read_timeout": CLIENT_READ_SECONDS,
        }
