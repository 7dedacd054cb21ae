"""While the apiserver is away, a status message waits (unacked) and its write is tried
again; what is not an outage is not retried."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from kubernetes.client.exceptions import ApiException

from asynctask_operator.kube import unavailable
from asynctask_operator.ports import Delivery
from asynctask_worker.messages import Phase, StatusMessage, TaskRef, encode
from tests.unit.operator.test_tracking import NS, Harness


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    h.inbox.api_retry_max_seconds = 0.01
    yield h
    await h.logic.webhooks.close()


def delivery(phase: Phase, seq: int) -> Delivery:
    msg = StatusMessage(
        task=TaskRef(uid="uid-t1", namespace=NS, name="t1"),
        attempt=1,
        seq=seq,
        phase=phase,
        at=datetime.now(UTC),
    )
    return Delivery(seq + 1, encode(msg), f"m-{seq}", 0)


async def test_a_status_write_waits_for_the_apiserver_and_is_acked_once_written(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="asynctask.operator")
    await harness.tracker.observe(harness.create())
    harness.api.unavailable_next = 3
    processing = delivery(Phase.PROCESSING, 0)
    await harness.inbox.handle(processing)
    assert harness.journal[-4:] == ["write t1 Processing"] * 4  # 3 refused, then written
    assert harness.phases() == ["Pending", "Processing"]
    assert harness.broker.acked == [processing] and harness.broker.refused == []
    # The outage is told once, its end once; the next message needs no retry.
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [m for lvl, m in said if lvl == logging.WARNING] == [
        "cannot write status: the Kubernetes API is unavailable (ConnectionRefusedError: "
        "[Errno 111] Connection refused); status messages wait, unacked, and are retried"
    ]
    assert len([m for _, m in said if "answers again after" in m]) == 1
    await harness.inbox.handle(delivery(Phase.SUCCEEDED, 1))
    assert harness.phases() == ["Pending", "Processing", "Succeeded"]


def test_only_an_unreachable_or_overloaded_apiserver_counts_as_unavailable() -> None:
    assert unavailable(ConnectionRefusedError(111, "refused"))
    assert unavailable(ApiException(status=503)) and unavailable(ApiException(status=429))
    assert unavailable(ApiException(status=0))  # no answer at all
    assert not unavailable(ApiException(status=403))  # RBAC: waiting will not help
    assert not unavailable(ApiException(status=409)) and not unavailable(ValueError("bug"))
