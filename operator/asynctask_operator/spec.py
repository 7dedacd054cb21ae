"""The AsyncTask spec as the operator reads it (the CRD's schema is the first line of defence).

One model for the whole spec, webhook included: a task's spec is parsed once, and a spec the
model refuses (the CRD should have refused it first) ends the task in Error, reason
InvalidSpec, saying which field is wrong.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from asynctask_operator.status import parse_time
from asynctask_worker.payloads import PayloadRef

#: http(s)://authority[/path][?query]: no user info, no fragment, no white space.
URL_PATTERN = r"^https?://[^\s/?#@]+([/?][^\s#]*)?$"


class SecretKeyRef(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[
        str, Field(min_length=1, max_length=253, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    ]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class WebhookSpec(BaseModel):
    """``spec.webhook`` of an AsyncTask."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=URL_PATTERN)]
    secret_ref: SecretKeyRef | None = Field(None, alias="secretRef")
    include_progress: bool = Field(False, alias="includeProgress")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("the URL has no host")
        _ = parts.port  # raises ValueError for a port that is not a number in range
        return url


class AsyncTaskSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    queue: Annotated[
        str, Field(min_length=1, max_length=63, pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    ]
    request: Any = None
    #: The request in object storage instead of ``request`` (the CRD refuses both).
    request_ref: PayloadRef | None = Field(None, alias="requestRef")
    timeout_seconds: Annotated[int | None, Field(alias="timeoutSeconds", ge=1, le=604800)] = None
    queue_timeout_seconds: Annotated[
        int | None, Field(alias="queueTimeoutSeconds", ge=1, le=604800)
    ] = None
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    retry_backoff_seconds: Annotated[int, Field(alias="retryBackoffSeconds", ge=1, le=3600)] = 5
    cancel: bool = False
    ttl_seconds_after_finished: Annotated[
        int | None, Field(alias="ttlSecondsAfterFinished", ge=0, le=31536000)
    ] = None
    webhook: WebhookSpec | None = None
    #: The earliest time the task may be queued (RFC 3339); absent: at once.
    not_before: Annotated[str | None, Field(alias="notBefore", max_length=64)] = None
    #: Higher first, where the queue has an AsyncQueue (held tasks are admitted by it).
    priority: Annotated[int, Field(ge=-100, le=100)] = 0

    @field_validator("not_before")
    @classmethod
    def _check_not_before(cls, value: str | None) -> str | None:
        if value is not None:
            parse_time(value)  # ValueError: not an RFC 3339 time
        return value

    def not_before_epoch(self) -> float | None:
        """``notBefore`` in epoch seconds, or None when the task may be queued at once."""
        return None if self.not_before is None else parse_time(self.not_before).timestamp()

    def retry_delay(self, retry: int, cap: float = 3600.0) -> float:
        """Seconds before retry number ``retry`` (1-based): exponential backoff."""
        return float(min(cap, self.retry_backoff_seconds * 2 ** (retry - 1)))
