"""Config: grouped, validated, and read from the same ASYNCTASK_* variables as ever."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from asynctask_operator import settings
from asynctask_operator.settings import Config

#: The operator's variables (the chart, the docs and deployments out there set these).
VARIABLES = {
    "ASYNCTASK_AMQP_URL",
    "ASYNCTASK_STATUS_PREFETCH",
    "ASYNCTASK_PUBLISHERS",
    "ASYNCTASK_HEARTBEAT_SECONDS",
    "ASYNCTASK_RECONNECT_MAX_DELAY_SECONDS",
    "ASYNCTASK_API_WORKERS",
    "ASYNCTASK_LEASE_DURATION_SECONDS",
    "ASYNCTASK_LEASE_RENEW_INTERVAL_SECONDS",
    "ASYNCTASK_LEASE_RENEW_DEADLINE_SECONDS",
    "ASYNCTASK_LEASE_RETRY_PERIOD_SECONDS",
    "ASYNCTASK_PROGRESS_PATCH_INTERVAL_SECONDS",
    "ASYNCTASK_EVENTS",
    "ASYNCTASK_MAX_REQUEST_BYTES",
    "ASYNCTASK_CANCEL_CONFIRM_SECONDS",
    "ASYNCTASK_RETRY_BACKOFF_CAP_SECONDS",
    "ASYNCTASK_SUBMIT_RETRY_SECONDS",
    "ASYNCTASK_FOLD_WINDOW_SECONDS",
    "ASYNCTASK_PUBLISH_FOLD_SECONDS",
    "ASYNCTASK_PUBLISH_FOLD_MAX_SECONDS",
    "ASYNCTASK_QUEUE_STATUS",
    "ASYNCTASK_METRICS_PORT",
    "ASYNCTASK_METRICS_ADDRESS",
    "ASYNCTASK_AUTOSCALING_ENABLED",
    "ASYNCTASK_MANAGEMENT_URL",
    "ASYNCTASK_MANAGEMENT_TIMEOUT_SECONDS",
    "ASYNCTASK_SCALE_INTERVAL_SECONDS",
    "ASYNCTASK_SCALE_DOWN_WINDOW_SECONDS",
    "ASYNCTASK_SCALE_DISCOVERY_INTERVAL_SECONDS",
    "ASYNCTASK_WEBHOOK_TIMEOUT_SECONDS",
    "ASYNCTASK_WEBHOOK_MAX_ATTEMPTS",
    "ASYNCTASK_WEBHOOK_MAX_AGE_SECONDS",
    "ASYNCTASK_WEBHOOK_BACKOFF_BASE_SECONDS",
    "ASYNCTASK_WEBHOOK_BACKOFF_MAX_SECONDS",
    "ASYNCTASK_WEBHOOK_CONCURRENCY",
    "ASYNCTASK_WEBHOOK_MAX_QUEUED_EVENTS",
    "ASYNCTASK_WEBHOOK_SECRET_CACHE_SECONDS",
    "ASYNCTASK_WEBHOOK_REQUIRE_HTTPS",
    "ASYNCTASK_WEBHOOK_ALLOWED_CIDRS",
    "ASYNCTASK_WEBHOOK_ALLOWED_HOSTS",
    "ASYNCTASK_ARCHIVE_URL",
    "ASYNCTASK_ARCHIVE_POOL_SIZE",
    "ASYNCTASK_ARCHIVE_BATCH_SIZE",
    "ASYNCTASK_ARCHIVE_FLUSH_SECONDS",
    "ASYNCTASK_ARCHIVE_RETENTION_DAYS",
    "ASYNCTASK_ARCHIVE_TTL_WAIT_SECONDS",
    "ASYNCTASK_ARCHIVE_MAX_PENDING_BYTES",
    "ASYNCTASK_ARCHIVE_MAINTENANCE_INTERVAL_SECONDS",
    "ASYNCTASK_S3_ENDPOINT",
    "ASYNCTASK_S3_BUCKET",
    "ASYNCTASK_S3_REGION",
    "ASYNCTASK_S3_PREFIX",
    "ASYNCTASK_S3_PATH_STYLE",
    "ASYNCTASK_S3_THRESHOLD_BYTES",
    "ASYNCTASK_S3_URL_SECONDS",
    "ASYNCTASK_S3_SWEEP_SECONDS",
    "ASYNCTASK_S3_GRACE_SECONDS",
}


def test_the_groups_read_exactly_the_known_variables() -> None:
    names = set()
    for field in Config.model_fields.values():
        group = field.annotation
        assert group is not None
        prefix = group.model_config["env_prefix"]
        names |= {(prefix + name).upper() for name in group.model_fields}
    assert names == VARIABLES


def test_each_variable_lands_in_its_group(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_AMQP_URL", "amqp://u:p@mq:5672/%2F")
    monkeypatch.setenv("ASYNCTASK_API_WORKERS", "3")
    monkeypatch.setenv("ASYNCTASK_EVENTS", "all")
    monkeypatch.setenv("ASYNCTASK_METRICS_PORT", "9100")
    monkeypatch.setenv("ASYNCTASK_SCALE_INTERVAL_SECONDS", "2.5")
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_TIMEOUT_SECONDS", "4")
    assert Config().lifecycle.queue_status  # the AsyncQueues' status is written by default
    monkeypatch.setenv("ASYNCTASK_QUEUE_STATUS", "false")
    config = Config()
    assert not config.lifecycle.queue_status
    assert config.broker.amqp_url == "amqp://u:p@mq:5672/%2F"
    assert config.kube.api_workers == 3
    assert config.lifecycle.events == "all"
    assert config.metrics.port == 9100 and config.metrics.address == "0.0.0.0"
    assert config.scaling.scale_interval_seconds == 2.5
    assert config.webhook.timeout_seconds == 4


def test_a_bad_value_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_CONCURRENCY", "0")
    with pytest.raises(ValidationError, match="concurrency"):
        Config()


def test_the_lease_timings_are_client_gos_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    lease = Config().lease
    assert (
        lease.duration_seconds,
        lease.renew_interval_seconds,
        lease.renew_deadline_seconds,
        lease.retry_period_seconds,
    ) == (15, 5.0, 10.0, 2.0)
    monkeypatch.setenv("ASYNCTASK_LEASE_DURATION_SECONDS", "30")
    monkeypatch.setenv("ASYNCTASK_LEASE_RENEW_DEADLINE_SECONDS", "20")
    assert (Config().lease.duration_seconds, Config().lease.renew_deadline_seconds) == (30, 20)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASYNCTASK_LEASE_RENEW_DEADLINE_SECONDS", "15"),  # not before the term ends
        ("ASYNCTASK_LEASE_RENEW_INTERVAL_SECONDS", "10"),  # no retry before the deadline
        ("ASYNCTASK_LEASE_RETRY_PERIOD_SECONDS", "12"),
        ("ASYNCTASK_LEASE_DURATION_SECONDS", "1"),
    ],
)
def test_lease_timings_that_would_let_two_lead_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="duration_seconds"):
        Config()


def test_the_resource_constants_are_still_importable_from_settings() -> None:
    assert (settings.GROUP, settings.VERSION, settings.PLURAL, settings.KIND) == (
        "asynctask.dev",
        "v1alpha1",
        "asynctasks",
        "AsyncTask",
    )


def test_the_publish_fold_extends_to_ten_seconds_at_most_a_minute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Config().lifecycle.publish_fold_max_seconds == 10.0
    monkeypatch.setenv("ASYNCTASK_PUBLISH_FOLD_MAX_SECONDS", "0")  # never extended
    assert Config().lifecycle.publish_fold_max_seconds == 0.0
    for bad in ("-1", "61", "soon"):
        monkeypatch.setenv("ASYNCTASK_PUBLISH_FOLD_MAX_SECONDS", bad)
        with pytest.raises(ValidationError, match="publish_fold_max_seconds"):
            Config()
