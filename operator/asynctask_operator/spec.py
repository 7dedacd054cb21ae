"""The AsyncTask spec as the operator reads it (the CRD's schema is the first line of defence)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field


class AsyncTaskSpec(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    queue: Annotated[str, Field(min_length=1, max_length=63,
                                pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
    request: Any = None
    timeout_seconds: Annotated[int | None, Field(alias="timeoutSeconds", ge=1, le=604800)] = None
    queue_timeout_seconds: Annotated[int | None, Field(alias="queueTimeoutSeconds", ge=1,
                                                       le=604800)] = None
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    retry_backoff_seconds: Annotated[int, Field(alias="retryBackoffSeconds", ge=1,
                                                le=3600)] = 5
    cancel: bool = False
    ttl_seconds_after_finished: Annotated[int | None, Field(
        alias="ttlSecondsAfterFinished", ge=0, le=31536000)] = None

    def retry_delay(self, retry: int, cap: float = 3600.0) -> float:
        """Seconds before retry number ``retry`` (1-based): exponential backoff."""
        return float(min(cap, self.retry_backoff_seconds * 2 ** (retry - 1)))
