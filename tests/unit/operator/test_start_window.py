"""A worker may hold an attempt's start report for its start window (docs/protocol.md): the
operator reads a short task's end alone (with ``started_at``) as start and end, and a
cancel of a published task waits for a start the worker may still hold before it says the
task was cancelled before a worker started it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from asynctask_operator import status as st
from asynctask_operator.deadlines import Kind
from asynctask_operator.tracking import CANCEL_START_WAIT_SECONDS
from asynctask_worker.messages import MAX_START_REPORT_SECONDS, ErrorInfo, Phase
from tests.unit.operator.test_tracking import Harness, until


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    h.tracker.cancel_start_wait = 0.3  # shorter than the real wait: the claims are the same
    yield h
    await h.logic.webhooks.close()


def test_the_operator_waits_longer_than_any_worker_may_hold_a_start() -> None:
    assert CANCEL_START_WAIT_SECONDS > MAX_START_REPORT_SECONDS


async def test_an_end_alone_records_its_started_at_as_the_start_time(harness: Harness) -> None:
    h = harness
    await h.tracker.observe(h.create())
    began = datetime.now(UTC) - timedelta(seconds=0.04)
    await h.send(Phase.SUCCEEDED, result={"r": 1}, started_at=began, worker="w/1")
    assert h.phases() == ["Pending", "Succeeded"]
    end = h.api.writes[-1]
    assert st.parse_time(end["startTime"]) == began
    assert st.parse_time(end["startTime"]) < st.parse_time(end["completionTime"])
    assert end["attempts"] == 1 and end["worker"] == "w/1"


async def test_a_retried_attempt_that_sent_only_its_end_keeps_its_start_time(
    harness: Harness,
) -> None:
    h = harness
    await h.tracker.observe(h.create(retries=1))
    began = datetime.now(UTC) - timedelta(seconds=0.02)
    error = ErrorInfo(reason="HandlerException", message="boom")
    await h.send(Phase.ERROR, error=error, started_at=began)
    retrying = h.api.writes[-1]
    assert retrying["phase"] == "Pending" and retrying["nextAttempt"] == 2
    assert st.parse_time(retrying["startTime"]) == began and retrying["attempts"] == 1


async def test_a_cancel_of_a_published_task_waits_for_the_workers_start_report(
    harness: Harness,
) -> None:
    h = harness
    await h.tracker.observe(h.create())
    assert h.phases() == ["Pending"]
    began = time.monotonic()
    await h.tracker.observe(h.create(cancel=True))
    assert [c.action for c in h.broker.controls] == ["cancel"]  # told to the workers at once
    assert h.phases() == ["Pending"]  # not yet said to be cancelled before it started
    await h.send(Phase.PROCESSING, worker="w/1")  # the start, at the worker's window's end
    await until(lambda: h.tracker.timers.due("uid-t1", Kind.CANCEL_CONFIRM) is not None)
    assert time.monotonic() - began >= 0.3
    assert h.phases() == ["Pending", "Processing"]  # the worker's word ends it
    await h.send(Phase.CANCELLED, seq=1, error=ErrorInfo(reason="Stopped", message=""))
    assert h.phases() == ["Pending", "Processing", "Cancelled"]
    assert h.api.writes[-1]["error"]["reason"] == "Stopped"


async def test_a_cancel_with_no_word_from_a_worker_ends_the_task_after_the_wait(
    harness: Harness,
) -> None:
    h = harness
    await h.tracker.observe(h.create())
    began = time.monotonic()
    await h.tracker.observe(h.create(cancel=True))
    await until(lambda: h.phases() == ["Pending", "Cancelled"])
    assert time.monotonic() - began >= 0.3
    assert "before a worker started it" in h.api.writes[-1]["message"]


async def test_a_cancel_of_a_task_never_published_ends_it_at_once(harness: Harness) -> None:
    h = harness
    h.tracker.cancel_start_wait = 60.0  # it must not matter
    await h.tracker.observe(h.create(notBefore="2099-01-01T00:00:00Z"))
    assert h.phases() == ["Pending"] and h.broker.tasks == []
    await h.tracker.observe(h.create(notBefore="2099-01-01T00:00:00Z", cancel=True))
    await until(lambda: h.phases() == ["Pending", "Cancelled"], within=5)


async def test_a_task_with_a_webhook_still_gets_its_processing_event(harness: Harness) -> None:
    """Webhooks get an event a phase: the start a worker withheld is written before the end
    (and its event sent), as the Processing it stands for would have been."""
    h = harness
    await h.tracker.observe(h.create(webhook={"url": "http://kubernetes/h"}))
    began = datetime.now(UTC) - timedelta(seconds=0.03)
    await h.send(Phase.SUCCEEDED, result={"r": 1}, started_at=began, worker="w/1")
    assert h.phases() == ["Pending", "Processing", "Succeeded"]
    start, end = h.api.writes[1], h.api.writes[2]
    assert st.parse_time(start["startTime"]) == began and start["worker"] == "w/1"
    assert end["startTime"] == start["startTime"] and end["attempts"] == 1
