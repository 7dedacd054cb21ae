"""Operator configuration: one validated object, read from ``ASYNCTASK_*`` variables."""

from __future__ import annotations

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
