"""The object storage of large payloads, as the operator reads it from ``ASYNCTASK_S3_*``:
the settings it shares with the gateway (:class:`~asynctask_worker.payloads.StorageSettings`)
and the sweep's.

Unset ``ASYNCTASK_S3_ENDPOINT``: offload is off and today's limits stand (a task with
``spec.requestRef`` ends in Error ``PayloadStorageOff``).
"""

from __future__ import annotations

from pydantic import Field

from asynctask_worker.payloads import MAX_URL_SECONDS, StorageSettings

__all__ = ["MAX_URL_SECONDS", "PayloadConfig"]


class PayloadConfig(StorageSettings):
    """``ASYNCTASK_S3_*``: where large requests and results are stored, and the sweep."""

    sweep_seconds: float = Field(
        600.0, gt=0, description="How often the leader sweeps orphaned objects."
    )
    grace_seconds: float = Field(
        3600.0,
        ge=0,
        description="An object whose task is gone is swept once it is older than this.",
    )
