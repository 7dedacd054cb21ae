"""Worker configuration: one validated object, read from ``ASYNCTASK_WORKER_*`` variables."""

from __future__ import annotations

import os
import socket
from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic import field_validator


def _default_worker_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASYNCTASK_WORKER_", extra="ignore")

    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/%2F",
                          description="RabbitMQ connection URL.")
    queues: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Queues to serve (comma-separated); empty serves every queue the app has.")
    concurrency: int = Field(1, ge=1, le=256, description="Tasks run at once.")
    prefetch: int | None = Field(None, ge=1, description="Unacked deliveries; default concurrency.")
    grace_period_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long running tasks may take to finish.")
    progress_interval_seconds: float = Field(
        0.5, ge=0.05, description="At most one progress message per task per interval.")
    heartbeat_seconds: int = Field(30, ge=0, description="AMQP heartbeat.")
    reconnect_max_delay_seconds: float = Field(30.0, gt=0)
    worker_id: str = Field(default_factory=_default_worker_id)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"

    @field_validator("queues", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [q.strip() for q in value.split(",") if q.strip()]
        return value

    @property
    def effective_prefetch(self) -> int:
        return self.prefetch or self.concurrency
