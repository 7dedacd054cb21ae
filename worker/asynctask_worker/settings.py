"""Worker configuration: one validated object, read from ``ASYNCTASK_WORKER_*`` variables.

Every field below is also an environment variable: ``concurrency`` is
``ASYNCTASK_WORKER_CONCURRENCY``, ``cancel_grace_seconds`` is
``ASYNCTASK_WORKER_CANCEL_GRACE_SECONDS``, and so on. CLI flags override them.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _default_worker_id() -> str:
    return f"{socket.gethostname()}/{os.getpid()}"


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASYNCTASK_WORKER_", extra="ignore")

    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        description="RabbitMQ connection URL, or the URLs of a cluster's "
        "nodes separated by commas (tried in turn).",
    )
    queues: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Queues to serve (comma-separated); empty serves every queue the app has.",
    )
    concurrency: int = Field(1, ge=1, le=256, description="Tasks run at once.")
    prefetch: int | None = Field(
        None, ge=1, description="Unacked deliveries held; default: the concurrency."
    )
    pool: Literal["thread", "process"] = Field(
        "thread",
        description="Run handlers in threads, or in child processes that can be "
        "killed when they do not stop after a cancellation.",
    )
    grace_period_seconds: float = Field(
        30.0,
        ge=0,
        description="On SIGTERM, how long running tasks may take to finish "
        "before they are requeued.",
    )
    cancel_grace_seconds: float = Field(
        10.0,
        ge=0,
        description="After a cancellation or the time limit, how long a handler "
        "may take to stop before it is stopped hard.",
    )
    progress_interval_seconds: float = Field(
        0.5, ge=0.05, description="At most one progress message per task per interval."
    )
    start_report_seconds: float = Field(
        0.05,
        ge=0,
        le=0.5,
        description="How long an attempt's Processing report is held: a task that ends "
        "within it sends only its end message (which carries the start time), one message "
        "fewer; a longer one is reported Processing when it ends (with its real start "
        "time), or at its first progress report. 0 reports every start at once.",
    )
    heartbeat_seconds: int = Field(30, ge=0, description="AMQP heartbeat.")
    reconnect_max_delay_seconds: float = Field(30.0, gt=0)
    control_history_seconds: float = Field(
        86_400.0,
        gt=0,
        description="How far back a starting worker reads cancellations "
        "(the control stream keeps one day).",
    )
    control_sync_timeout_seconds: float = Field(
        30.0,
        gt=0,
        description="How long a connecting worker waits to catch up with the "
        "control stream before it serves tasks anyway.",
    )
    revoked_capacity: int = Field(
        100_000, ge=100, description="How many revoked task ids a worker remembers."
    )
    payload_retry_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a transfer of a stored request or result is tried again "
        "while the object store is unreachable or failing (5xx), before the task ends "
        "in Error (RequestDownloadFailed, ResultUploadFailed).",
    )
    worker_id: str = Field(default_factory=_default_worker_id)
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    metrics_port: int | None = Field(
        None, ge=0, le=65535, description="Serve Prometheus metrics on this port (0: any)."
    )
    metrics_address: str = Field("0.0.0.0", description="Address the metrics server binds.")

    @field_validator("queues", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [q.strip() for q in value.split(",") if q.strip()]
        return value

    @property
    def effective_prefetch(self) -> int:
        return self.prefetch or self.concurrency
