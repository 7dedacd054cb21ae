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
