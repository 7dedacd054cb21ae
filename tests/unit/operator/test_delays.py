"""Delayed tasks (``spec.notBefore``): the deadline they call for (pure), the scheduler that
fires it never early, and the task logic that holds a task and queues it when due, wired
as the operator wires it against the fake API and broker of ``test_tracking``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from asynctask_operator import status as st
from asynctask_operator.deadlines import Kind, epoch, wanted
from asynctask_operator.spec import AsyncTaskSpec
from asynctask_operator.timers import Deadlines
from tests.unit.operator.test_tracking import Harness

DUE = "2030-01-01T12:00:00Z"
NOW = datetime(2030, 1, 1, 11, 0, tzinfo=UTC)
SPEC = AsyncTaskSpec.model_validate({"queue": "q", "notBefore": DUE, "queueTimeoutSeconds": 30})


def in_seconds(seconds: float) -> str:
    return st.precise_time(datetime.now(UTC) + timedelta(seconds=seconds))


# the spec and the status (pure) ----------------------------------------------------------


def test_not_before_is_read_as_an_rfc3339_time_and_refused_otherwise() -> None:
    assert SPEC.not_before_epoch() == epoch(DUE)
    nanos = AsyncTaskSpec.model_validate({"queue": "q", "notBefore": "2030-01-01T13:00:00.5+01:00"})
    assert nanos.not_before_epoch() == epoch(DUE) + 0.5
    assert AsyncTaskSpec.model_validate({"queue": "q"}).not_before_epoch() is None
    with pytest.raises(ValueError, match="notBefore"):
        AsyncTaskSpec.model_validate({"queue": "q", "notBefore": "tomorrow at noon"})


def test_a_held_status_is_pending_with_reason_scheduled_and_not_queued() -> None:
    held = st.scheduled({}, st.parse_time(DUE), NOW, 1)
    assert held["phase"] == "Pending" and held["message"] == f"scheduled for {DUE}"
    assert held["scheduledTime"] == "2030-01-01T12:00:00.000000Z"
    assert "queuedTime" not in held and "messageId" not in held
    assert {c["reason"] for c in held["conditions"]} == {st.SCHEDULED}
    assert st.held(held)
    assert st.scheduled({"phase": "Cancelled"}, st.parse_time(DUE), NOW, 1) == {
        "phase": "Cancelled"
    }


def test_queueing_a_held_task_counts_its_queue_time_from_the_due_time() -> None:
    held = st.scheduled({}, st.parse_time(DUE), NOW, 1)
    due = st.parse_time(DUE)
    queued = st.pending(held, "task:u:1", due, 1)
    assert queued["queuedTime"] == "2030-01-01T12:00:00.000000Z"
    assert queued["message"] == "Waiting for a worker" and not st.held(queued)
    assert {c["reason"] for c in queued["conditions"]} == {"Pending"}
    assert wanted(queued, SPEC) == {Kind.QUEUE_TIMEOUT: epoch(DUE) + 30}


# the deadline (pure) ---------------------------------------------------------------------


def test_a_held_task_wants_its_due_time_and_nothing_else() -> None:
    held = st.scheduled({}, st.parse_time(DUE), NOW, 1)
    assert wanted(held, SPEC) == {Kind.NOT_BEFORE: epoch(DUE)}


def test_the_due_time_is_rebuilt_from_the_object_alone() -> None:
    """What an operator that starts again (or a new leader) reads: the stored status."""
    stored: dict[str, Any] = {"phase": "Pending", "scheduledTime": "2030-01-01T12:00:00Z"}
    assert wanted(stored, SPEC) == {Kind.NOT_BEFORE: epoch(DUE)}
    no_spec_time = AsyncTaskSpec.model_validate({"queue": "q"})
    assert wanted(stored, no_spec_time) == {Kind.NOT_BEFORE: epoch(DUE)}


def test_a_queued_or_finished_task_no_longer_wants_its_due_time() -> None:
    queued = {"phase": "Pending", "scheduledTime": DUE, "messageId": "task:u:1"}
    assert Kind.NOT_BEFORE not in wanted(queued, SPEC)
    cancelled = {"phase": "Cancelled", "scheduledTime": DUE, "completionTime": DUE}
    assert wanted(cancelled, SPEC)[Kind.NOT_BEFORE] is None


async def test_the_scheduler_fires_a_due_time_never_early() -> None:
    timers, fired = Deadlines(), asyncio.Event()
    at: list[float] = []

    async def fire(uid: str, kind: Kind) -> None:
        at.append(time.time())
        fired.set()

    due = time.time() + 0.3
    timers.set("u", Kind.NOT_BEFORE, due)
    runner = asyncio.create_task(timers.run(fire))
    await asyncio.wait_for(fired.wait(), 5)
    runner.cancel()
    assert due <= at[0] < due + 1.0
    assert timers.count(Kind.NOT_BEFORE) == 0


# the task logic --------------------------------------------------------------------------


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.logic.webhooks.close()


async def test_a_delayed_task_is_held_with_one_write_and_nothing_published(
    harness: Harness,
) -> None:
    due = in_seconds(3600)
    await harness.tracker.observe(harness.create(notBefore=due))
    assert harness.journal == ["write t1 Pending"]
    [held] = harness.api.writes
    assert st.held(held) and held["message"].startswith("scheduled for ")
    assert harness.logic.timers.due("uid-t1", Kind.NOT_BEFORE) == epoch(due)
    assert harness.metrics.value("asynctask_operator_tasks_held") == 1
    await harness.tracker.observe(harness.body())  # the watch sees its own write
    assert harness.journal == ["write t1 Pending"]


async def test_at_its_due_time_a_held_task_is_published_and_recorded_once(
    harness: Harness,
) -> None:
    await harness.tracker.observe(harness.create(notBefore=in_seconds(0.2)))
    await asyncio.sleep(0.25)
    await harness.tracker.fire("uid-t1", Kind.NOT_BEFORE)
    assert harness.journal == ["write t1 Pending", "publish t1 attempt 1", "write t1 Pending"]
    assert harness.api.writes[-1]["messageId"] == "task:uid-t1:1"
    await harness.tracker.fire("uid-t1", Kind.NOT_BEFORE)  # a second firing: nothing
    await harness.tracker.observe(harness.body())
    assert len(harness.journal) == 3
    assert harness.metrics.value("asynctask_operator_tasks_released_total") == 1


async def test_a_due_time_fired_early_publishes_nothing_and_waits_again(
    harness: Harness,
) -> None:
    due = in_seconds(3600)
    await harness.tracker.observe(harness.create(notBefore=due))
    harness.logic.timers.clear("uid-t1")
    await harness.tracker.fire("uid-t1", Kind.NOT_BEFORE)
    assert harness.broker.tasks == []
    assert harness.logic.timers.due("uid-t1", Kind.NOT_BEFORE) == epoch(due)


async def test_a_time_already_past_queues_the_task_at_once(harness: Harness) -> None:
    await harness.tracker.observe(harness.create(notBefore="2020-01-01T00:00:00Z"))
    assert harness.journal == ["publish t1 attempt 1", "write t1 Pending"]


async def test_cancelling_a_held_task_ends_it_and_it_is_never_published(
    harness: Harness,
) -> None:
    await harness.tracker.observe(harness.create(notBefore=in_seconds(3600)))
    harness.body()["spec"]["cancel"] = True
    await harness.tracker.observe(harness.body())
    assert harness.api.writes[-1]["phase"] == "Cancelled"
    assert harness.logic.timers.due("uid-t1", Kind.NOT_BEFORE) is None
    await harness.tracker.fire("uid-t1", Kind.NOT_BEFORE)
    assert harness.broker.tasks == []


async def test_deleting_a_held_task_forgets_its_due_time(harness: Harness) -> None:
    body = harness.create(notBefore=in_seconds(3600))
    await harness.tracker.observe(body)
    await harness.tracker.deleted(harness.body())
    assert harness.logic.timers.due("uid-t1", Kind.NOT_BEFORE) is None
    assert harness.broker.tasks == []


async def test_an_operator_that_starts_again_holds_the_task_until_the_same_time() -> None:
    first, second = Harness(), Harness()
    due = in_seconds(3600)
    await first.tracker.observe(first.create(notBefore=due))
    await second.tracker.observe(first.body())  # the new process lists the object
    assert second.journal == []  # no write, no publish
    assert second.logic.timers.due("uid-t1", Kind.NOT_BEFORE) == epoch(due)
    for h in (first, second):
        await h.logic.webhooks.close()


async def test_an_operator_that_starts_again_after_the_release_does_not_publish_again() -> None:
    first, second = Harness(), Harness()
    await first.tracker.observe(first.create(notBefore=in_seconds(0.1)))
    await asyncio.sleep(0.15)
    await first.tracker.fire("uid-t1", Kind.NOT_BEFORE)
    await second.tracker.observe(first.body())
    assert second.journal == []
    assert second.logic.timers.due("uid-t1", Kind.NOT_BEFORE) is None
    for h in (first, second):
        await h.logic.webhooks.close()
