"""The object storage of large payloads, as the operator reads it from ``ASYNCTASK_S3_*``.

Unset ``ASYNCTASK_S3_ENDPOINT``: offload is off and today's limits stand (a task with
``spec.requestRef`` ends in Error ``PayloadStorageOff``). The gateway reads the same
variable names into a model of its own. Credentials are not settings: boto3's default
chain reads them (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` from a Secret, or a
role such as IRSA on AWS).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from asynctask_worker.payloads import DEFAULT_PREFIX, DEFAULT_THRESHOLD_BYTES

#: The longest a SigV4 presigned URL may live (7 days).
MAX_URL_SECONDS = 7 * 24 * 3600


class PayloadConfig(BaseSettings):
    """``ASYNCTASK_S3_*``: where large requests and results are stored."""

    model_config = SettingsConfigDict(env_prefix="ASYNCTASK_S3_", extra="ignore")

    endpoint: Annotated[str | None, Field(pattern=r"^https?://[^\s/?#@]+/?$")] = Field(
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
        description="A result larger than this (as JSON, or any bytes) is stored, not inlined.",
    )
    url_seconds: int = Field(
        86400,
        ge=60,
        le=MAX_URL_SECONDS,
        description="How long a worker's presigned URLs work (from the task's publish: a "
        "task queued longer than this fails with PayloadUrlExpired).",
    )
    sweep_seconds: float = Field(
        600.0, gt=0, description="How often the leader sweeps orphaned objects."
    )
    grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="An object whose task is gone is swept once it is older than this.",
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
    def _bucket_with_endpoint(self) -> PayloadConfig:
        if self.endpoint and not self.bucket:
            raise ValueError("ASYNCTASK_S3_ENDPOINT is set but ASYNCTASK_S3_BUCKET is not")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.endpoint and self.bucket)
