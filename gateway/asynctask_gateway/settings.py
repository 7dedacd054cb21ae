"""Gateway configuration: one validated object, read from ``ASYNCTASK_GATEWAY_*`` variables,
and the object storage of large payloads (:class:`S3Settings`, ``ASYNCTASK_S3_*``: the names
the operator reads too; docs/payloads.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from asynctask_worker.payloads import ENDPOINT_PATTERN, StorageSettings

#: The longest long-poll or ``Prefer: wait``: below the common 60 s idle limit of proxies
#: and load balancers (ingress-nginx, AWS ELB), so a wait never dies in the middle.
MAX_WAIT_SECONDS = 55.0


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASYNCTASK_GATEWAY_", extra="ignore")

    port: int = Field(8080, ge=0, le=65535, description="The one HTTP port (0: any free one).")
    address: str = Field("0.0.0.0", description="The address to bind.")
    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Namespaces served and watched (comma-separated); empty: all namespaces.",
    )
    audiences: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Token audiences for TokenReview (comma-separated); "
        "empty: the apiserver's default audiences.",
    )
    allow_anonymous: bool = Field(
        False, description="Serve callers without a token as system:anonymous (still authorized)."
    )
    auth_cache_seconds: float = Field(
        10.0, ge=0, description="How long TokenReview and SubjectAccessReview answers are reused."
    )
    max_streams_per_user: int = Field(100, ge=1, description="Open event streams per caller.")
    max_waits_per_user: int = Field(100, ge=1, description="Open long-polls per caller.")
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest body of one POST.")
    max_batch_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest body of a batch POST."
    )
    max_request_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description=(
            "Largest spec.request (as JSON); the operator's ASYNCTASK_MAX_REQUEST_BYTES default."
        ),
    )
    keepalive_seconds: float = Field(15.0, gt=0, description="SSE keepalive comment interval.")
    default_wait_seconds: float = Field(30.0, gt=0, le=MAX_WAIT_SECONDS)
    watch_timeout_seconds: int = Field(
        300, ge=10, description="Server-side watch length before it is resumed."
    )
    archive_url: str | None = Field(
        None,
        description="libpq URL of the history archive (docs/history.md), read-only use; "
        "unset: no history (GET of a task that is gone is 404, the history list 404).",
    )
    archive_pool_size: int = Field(2, ge=1, le=50, description="Connections to the archive.")
    max_upload_bytes: int = Field(
        5 * 1024**3,
        ge=1,
        description="Largest body of POST …/payloads (bytes streamed to object storage).",
    )

    @field_validator("namespaces", "audiences", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        return _split(value)


class S3Settings(StorageSettings):
    """Object storage of large payloads (the operator's names and checks); unset
    ``endpoint``: offload off (today's limits stand, and the payload routes answer 501
    saying how to turn it on)."""

    public_endpoint: Annotated[str | None, Field(pattern=ENDPOINT_PATTERN)] = Field(
        None,
        description="The endpoint in URLs handed to callers outside (GET …/result/url); "
        "default: endpoint.",
    )

    @field_validator("public_endpoint", mode="before")
    @classmethod
    def _empty_public_is_unset(cls, value: object) -> object:
        return None if value == "" else value
