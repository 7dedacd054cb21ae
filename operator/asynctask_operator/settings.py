"""Operator configuration, in groups: each a validated model read from ``ASYNCTASK_*``.

The variable names are those of the flat settings this replaced (``ASYNCTASK_AMQP_URL``,
``ASYNCTASK_WEBHOOK_TIMEOUT_SECONDS``...). :class:`Config` composes the groups, and each
component is handed only its own group, so a component's settings can be read in one place.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from asynctask_operator.apiserver.resource import GROUP, KIND, PLURAL, VERSION
from asynctask_operator.payloads.settings import PayloadConfig

__all__ = [
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ArchiveConfig",
    "BrokerConfig",
    "Config",
    "KubeConfig",
    "LeaseConfig",
    "LifecycleConfig",
    "MetricsConfig",
    "PayloadConfig",
    "ScalingConfig",
    "WebhookConfig",
]

_ENV = "ASYNCTASK_"


class BrokerConfig(BaseSettings):
    """RabbitMQ: the operator's connection (broker/) and the depth reader's (scaling/)."""

    model_config = SettingsConfigDict(env_prefix=_ENV, extra="ignore")

    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/%2F",
        description="RabbitMQ connection URL, or the URLs of a cluster's "
        "nodes separated by commas (tried in turn).",
    )
    status_prefetch: int = Field(256, ge=1, description="Unacked status messages in flight.")
    publishers: int = Field(
        4,
        ge=1,
        le=32,
        description="Connections that publish task and control messages, each with up to "
        "256 publishes awaiting their confirm (broker/publishers.py).",
    )
    heartbeat_seconds: int = Field(30, ge=0)
    reconnect_max_delay_seconds: float = Field(30.0, gt=0)


class KubeConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=_ENV, extra="ignore")

    api_workers: int = Field(
        16,
        ge=1,
        le=64,
        description="Connections for Kubernetes API calls (at once; the watches have their own).",
    )


class LeaseConfig(BaseSettings):
    """Leader election on a Lease (leader/leadership.py), with ``--peering NAME``: client-go's
    defaults, which kube-controller-manager uses too."""

    model_config = SettingsConfigDict(env_prefix=_ENV + "LEASE_", extra="ignore")

    duration_seconds: int = Field(
        15,
        ge=2,
        le=3600,
        description="How long a standby waits, after the leader's last renewal it saw, "
        "before it takes the Lease (a crashed leader's tasks wait this long).",
    )
    renew_interval_seconds: float = Field(
        5.0, gt=0, description="How often the leader renews its Lease."
    )
    renew_deadline_seconds: float = Field(
        10.0,
        gt=0,
        description="A leader that could not renew for this long stops (and restarts), "
        "before a standby may take the Lease.",
    )
    retry_period_seconds: float = Field(
        2.0,
        gt=0,
        description="How often a standby tries to take the Lease, and a leader whose "
        "renewal failed tries again.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> LeaseConfig:
        """A leader must give up before a standby may take over, and retry in between."""
        if not (
            self.retry_period_seconds < self.renew_deadline_seconds < self.duration_seconds
        ) or not (self.renew_interval_seconds < self.renew_deadline_seconds):
            raise ValueError(
                "lease timings must satisfy retry_period_seconds < renew_deadline_seconds "
                "< duration_seconds, and renew_interval_seconds < renew_deadline_seconds"
            )
        return self


class LifecycleConfig(BaseSettings):
    """What happens to a task: status writes, Events, limits, cancellation, retries."""

    model_config = SettingsConfigDict(env_prefix=_ENV, extra="ignore")

    progress_patch_interval_seconds: float = Field(
        1.0,
        ge=0.1,
        description="At most one progress status patch per task per interval; "
        "phase changes are written at once.",
    )
    events: Literal["all", "failures", "none"] = Field(
        "failures",
        description="Which Kubernetes Events to record: every phase change (all: "
        "+1 API write each), what goes wrong or is done to a task "
        "(failures), or none.",
    )
    max_request_bytes: int = Field(
        256 * 1024,
        ge=1024,
        description="Largest spec.request (as JSON) the operator queues; "
        "larger ones end in Error, reason RequestTooLarge.",
    )
    cancel_confirm_seconds: float = Field(
        45.0,
        gt=0,
        description="How long a worker has to confirm a cancellation (its grace "
        "period plus a margin) before the operator records Cancelled.",
    )
    retry_backoff_cap_seconds: float = Field(3600.0, gt=0)
    fold_window_seconds: float = Field(
        0.05,
        ge=0,
        le=1,
        description="How long a task's start waits for its end before it is written: a "
        "task that finishes within it goes Pending -> Succeeded in one write (0: never "
        "wait).",
    )
    publish_fold_seconds: float = Field(
        1.0,
        ge=0,
        le=5,
        description="How long a new task's Pending write (the record of its publish) waits "
        "for the task's end: a task that ends within it costs one status write, its "
        "Pending folded into the end (0: write Pending at once). An operator killed "
        "meanwhile publishes the task again when it restarts (the same message id).",
    )
    publish_fold_max_seconds: float = Field(
        10.0,
        ge=0,
        le=60,
        description="How long a new task's Pending write may wait for the task's end when "
        "the apiserver is busy (status writes waiting for it when the publish fold "
        "window ends): the wait is extended a window at a time up to this long after the "
        "publish, so that a burst's tasks, ending seconds after their publish, are "
        "written once. At most publish_fold_seconds (e.g. 0): never extended. It bounds "
        "how many tasks a killed operator publishes again when it restarts.",
    )
    submit_retry_seconds: float = Field(
        5.0,
        gt=0,
        description="How soon a new task whose message could not be published is tried again.",
    )
    queue_status: bool = Field(
        True,
        description="Write the AsyncQueues' status and their Paused/Resumed Events. An "
        "AsyncQueue is cluster-scoped and a namespace shard's figures are its own: with "
        "several shards, set false on all but one (docs/scaling-out.md).",
    )


class MetricsConfig(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=_ENV + "METRICS_", extra="ignore")

    port: int | None = Field(
        None, ge=0, le=65535, description="Serve Prometheus metrics on this port (0: any)."
    )
    address: str = Field("0.0.0.0", description="Address the metrics server binds.")


class ScalingConfig(BaseSettings):
    """Autoscaling of worker Deployments on queue depth (scaling/, docs/autoscaling.md)."""

    model_config = SettingsConfigDict(env_prefix=_ENV, extra="ignore")

    autoscaling_enabled: bool = Field(
        True,
        description="Scale the worker Deployments labelled asynctask.dev/autoscale=true "
        "on the depth of their queues.",
    )
    management_url: str | None = Field(
        None,
        description="RabbitMQ management API, http://user:password@<host>:15672: "
        "counts in-flight (unacked) tasks too. Unset: ready messages only.",
    )
    management_timeout_seconds: float = Field(2.0, gt=0, description="Per management request.")
    scale_interval_seconds: float = Field(
        1.0, ge=0.2, description="How often queue depths are read and replicas decided."
    )
    scale_down_window_seconds: float = Field(
        120.0,
        ge=0,
        description="Scale down only to the highest replica count wanted over "
        "this window; scale-ups are immediate.",
    )
    scale_discovery_interval_seconds: float = Field(
        10.0, ge=1, description="How often the opted-in Deployments are listed (one LIST)."
    )


class WebhookConfig(BaseSettings):
    """Webhooks (spec.webhook): see docs/webhooks.md."""

    model_config = SettingsConfigDict(env_prefix=_ENV + "WEBHOOK_", extra="ignore")

    timeout_seconds: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Time limit of one delivery attempt, all included: "
        "secret, DNS, connect, TLS, request, response headers.",
    )
    max_attempts: int = Field(
        8, ge=1, le=100, description="Attempts per event before it is given up."
    )
    max_age_seconds: float = Field(
        3600.0,
        gt=0,
        description="An event not delivered this long after it was queued is "
        "given up (no further retry starts later than that).",
    )
    backoff_base_seconds: float = Field(
        1.0,
        gt=0,
        description="Wait before the first retry; doubled for each further retry, "
        "with jitter (each wait is 50-100% of the nominal one).",
    )
    backoff_max_seconds: float = Field(
        300.0, gt=0, description="Longest wait between two attempts (also caps Retry-After)."
    )
    concurrency: int = Field(
        8, ge=1, le=256, description="Deliveries in flight at once (one at most per task)."
    )
    max_queued_events: int = Field(
        10000,
        ge=1,
        description="Events waiting for delivery, all tasks together; beyond "
        "that new events are dropped (and reported as not delivered).",
    )
    secret_cache_seconds: float = Field(
        60.0, ge=0, description="How long a signing key read from a Secret is reused."
    )
    require_https: bool = Field(
        False, description="Refuse http:// webhook URLs (deliveries fail without a request)."
    )
    allowed_cidrs: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated networks (e.g. 10.20.0.0/16) that "
        "webhooks may reach although they are private, "
        "loopback or link-local. Empty: only public ones.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host names (exact, or *.example.com "
        "for subdomains) exempt from the cluster-internal name "
        "rules and allowed to resolve to private addresses.",
    )

    @field_validator("allowed_cidrs", "allowed_hosts", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lstrip().startswith("["):
            return json.loads(value)
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("allowed_cidrs")
    @classmethod
    def _check_cidrs(cls, value: list[str]) -> list[str]:
        return [str(ipaddress.ip_network(item, strict=False)) for item in value]


class ArchiveConfig(BaseSettings):
    """The history archive in PostgreSQL (docs/history.md): off unless a URL is given."""

    model_config = SettingsConfigDict(env_prefix=_ENV + "ARCHIVE_", extra="ignore")

    url: str | None = Field(
        None,
        description="libpq URL of the archive's database (postgresql://user:pw@host/db?"
        "sslmode=verify-full). Unset: no archive, everything works as without one.",
    )
    pool_size: int = Field(4, ge=1, le=100, description="Connections the operator may open.")
    batch_size: int = Field(200, ge=1, le=10_000, description="Rows written per batch at most.")
    flush_seconds: float = Field(
        1.0, gt=0, le=60, description="A batch is written this long after its first row."
    )
    retention_days: int = Field(
        30, ge=0, description="Days of history kept (whole daily partitions dropped); 0: all."
    )
    ttl_wait_seconds: float = Field(
        600.0,
        ge=0,
        description="How long a TTL deletion waits for its task to be archived; past it the "
        "task is deleted anyway (counted in asynctask_operator_archive_unarchived_deletions).",
    )
    max_pending_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory for rows waiting to be archived; beyond it tasks wait by name and "
        "are read again from the apiserver.",
    )
    maintenance_interval_seconds: float = Field(
        3600.0, ge=1, description="How often partitions are made ahead and retention applied."
    )

    @property
    def enabled(self) -> bool:
        return bool(self.url)


class Config(BaseModel):
    """Every group; ``Config()`` reads them all from the environment (and validates them)."""

    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    kube: KubeConfig = Field(default_factory=KubeConfig)
    lease: LeaseConfig = Field(default_factory=LeaseConfig)
    lifecycle: LifecycleConfig = Field(default_factory=LifecycleConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    payloads: PayloadConfig = Field(default_factory=PayloadConfig)
