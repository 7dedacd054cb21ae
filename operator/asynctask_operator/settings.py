"""Operator configuration: one validated object, read from ``ASYNCTASK_*`` variables."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

GROUP = "asynctask.dev"
VERSION = "v1alpha1"
PLURAL = "asynctasks"
KIND = "AsyncTask"


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASYNCTASK_", extra="ignore")

    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/%2F",
                          description="RabbitMQ connection URL.")
    progress_patch_interval_seconds: float = Field(
        1.0, ge=0.1, description="At most one progress status patch per task per interval; "
                                 "phase changes are written at once.")
    status_prefetch: int = Field(256, ge=1, description="Unacked status messages in flight.")
    api_workers: int = Field(8, ge=1, le=64, description="Threads for Kubernetes API calls.")
    heartbeat_seconds: int = Field(30, ge=0)
    reconnect_max_delay_seconds: float = Field(30.0, gt=0)
    # Lifecycle
    events: Literal["all", "failures", "none"] = Field(
        "failures", description="Which Kubernetes Events to record: every phase change (all: "
                                "+1 API write each), what goes wrong or is done to a task "
                                "(failures), or none.")
    max_request_bytes: int = Field(
        256 * 1024, ge=1024, description="Largest spec.request (as JSON) the operator queues; "
                                         "larger ones end in Error, reason RequestTooLarge.")
    cancel_confirm_seconds: float = Field(
        45.0, gt=0, description="How long a worker has to confirm a cancellation (its grace "
                                "period plus a margin) before the operator records Cancelled.")
    retry_backoff_cap_seconds: float = Field(3600.0, gt=0)
