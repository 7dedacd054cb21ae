"""Deadlines: which ones a status calls for (pure), and the single scheduler that fires them
(order, replacement, clearing, failures retried)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from typing import Any

import pytest

from asynctask_operator import status as st
from asynctask_operator.deadlines import Kind, epoch, wanted
from asynctask_operator.spec import AsyncTaskSpec
from asynctask_operator.timers import Deadlines
from asynctask_worker.messages import Phase, StatusMessage, TaskRef

SPEC = AsyncTaskSpec.model_validate(
    {"queue": "q", "timeoutSeconds": 60, "queueTimeoutSeconds": 30, "ttlSecondsAfterFinished": 10}
)
T0 = "2030-01-01T00:00:00Z"


# what a status calls for ----------------------------------------------------------------


def test_nothing_is_wanted_without_a_phase_or_a_valid_spec() -> None:
    assert wanted({}, SPEC) == {}
    assert wanted({"phase": "Pending", "queuedTime": T0}, None) == {}


def test_a_queued_task_wants_its_queue_timeout() -> None:
    assert wanted({"phase": "Pending", "queuedTime": T0}, SPEC) == {
        Kind.QUEUE_TIMEOUT: epoch(T0) + 30
    }
    no_limit = AsyncTaskSpec.model_validate({"queue": "q"})
    assert wanted({"phase": "Pending", "queuedTime": T0}, no_limit) == {}


def test_a_waiting_retry_wants_its_time_and_no_queue_timeout() -> None:
    status = {
        "phase": "Pending",
        "queuedTime": T0,
        "nextAttempt": 2,
        "nextAttemptTime": "2030-01-01T00:00:05Z",
    }
    assert wanted(status, SPEC) == {Kind.RETRY: epoch(T0) + 5}


def test_a_running_task_clears_its_queue_timeout_and_wants_its_run_timeout() -> None:
    status = {"phase": "Processing", "queuedTime": T0, "startTime": "2030-01-01T00:00:02Z"}
    assert wanted(status, SPEC) == {Kind.QUEUE_TIMEOUT: None, Kind.RUN_TIMEOUT: epoch(T0) + 62}


@pytest.mark.parametrize("phase", ["Succeeded", "Failed", "Error", "Cancelled", "TimedOut"])
def test_a_finished_task_clears_everything_but_its_ttl(phase: str) -> None:
    status: dict[str, Any] = {"phase": phase, "completionTime": "2030-01-01T00:01:00Z"}
    assert wanted(status, SPEC) == {
        Kind.QUEUE_TIMEOUT: None,
        Kind.RUN_TIMEOUT: None,
        Kind.RETRY: None,
        Kind.CANCEL_CONFIRM: None,
        Kind.NOT_BEFORE: None,
        Kind.TTL: epoch(T0) + 70,
    }


def test_times_with_fractional_seconds_are_read() -> None:
    status = {"phase": "Processing", "startTime": "2030-01-01T00:00:02.500Z"}
    assert wanted(status, SPEC)[Kind.RUN_TIMEOUT] == epoch(T0) + 62.5


def test_the_scheduler_applies_what_is_wanted_and_leaves_other_kinds() -> None:
    d = Deadlines()
    d.set("t", Kind.CANCEL_CONFIRM, 5.0)
    d.set("t", Kind.QUEUE_TIMEOUT, 1.0)
    d.apply("t", {Kind.QUEUE_TIMEOUT: None, Kind.RUN_TIMEOUT: 9.0})
    assert (
        d.due("t", Kind.QUEUE_TIMEOUT),
        d.due("t", Kind.RUN_TIMEOUT),
        d.due("t", Kind.CANCEL_CONFIRM),
    ) == (None, 9.0, 5.0)


# the scheduler --------------------------------------------------------------------------


async def test_fires_in_time_order_only_the_latest_setting() -> None:
    fired: list[tuple[str, Kind]] = []
    done = asyncio.Event()

    async def fire(uid: str, kind: Kind) -> None:
        fired.append((uid, kind))
        if uid == "last":
            done.set()

    d = Deadlines()
    base = time.time()
    d.set("b", Kind.RUN_TIMEOUT, base + 0.10)
    d.set("a", Kind.RUN_TIMEOUT, base + 0.05)
    d.set("c", Kind.TTL, base + 0.01)
    d.set("c", Kind.TTL, base + 0.15)  # replaced: fires once, later
    d.set("gone", Kind.RETRY, base + 0.02)
    d.clear("gone")
    d.set("last", Kind.RETRY, base + 0.2)
    runner = asyncio.create_task(d.run(fire))
    await asyncio.wait_for(done.wait(), 5)
    runner.cancel()
    assert fired == [
        ("a", Kind.RUN_TIMEOUT),
        ("b", Kind.RUN_TIMEOUT),
        ("c", Kind.TTL),
        ("last", Kind.RETRY),
    ]
    assert len(d) == 0


async def test_an_earlier_deadline_wakes_the_sleeping_scheduler() -> None:
    fired = asyncio.Event()

    async def fire(uid: str, kind: Kind) -> None:
        fired.set()

    d = Deadlines()
    d.set("far", Kind.TTL, time.time() + 3600)
    runner = asyncio.create_task(d.run(fire))
    await asyncio.sleep(0.05)
    d.set("near", Kind.RETRY, time.time() + 0.05)
    await asyncio.wait_for(fired.wait(), 5)
    runner.cancel()
    assert d.due("far", Kind.TTL) is not None


async def test_a_failing_deadline_is_retried_not_lost() -> None:
    calls = 0
    now = [1000.0]

    async def fire(uid: str, kind: Kind) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("apiserver unavailable")

    d = Deadlines(clock=lambda: now[0])
    d.set("x", Kind.RUN_TIMEOUT, 999.0)
    runner = asyncio.create_task(d.run(fire))
    await asyncio.sleep(0.05)
    runner.cancel()
    assert calls == 1
    assert d.due("x", Kind.RUN_TIMEOUT) == 1005.0


def test_many_tasks_are_cheap() -> None:
    d = Deadlines()
    for r in range(5):  # every deadline set five times: 400k stale heap entries, unless
        for i in range(100_000):  # they are compacted away
            d.set(f"task-{i}", Kind.RUN_TIMEOUT, 10_000.0 + r * 100_000 + i)
    assert len(d) == 100_000
    assert len(d._heap) <= 4 * len(d)
    assert d.due("task-7", Kind.RUN_TIMEOUT) == 10_000.0 + 4 * 100_000 + 7


# deadlines from sub-second times: late by a little at most, never early -------------------


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_queue_timeout_counts_from_the_exact_time_the_task_was_queued() -> None:
    queued = _at("2030-01-01T00:00:00.700000+00:00")
    status = st.pending({}, "task:u:1", queued, None)
    due = wanted(status, SPEC)[Kind.QUEUE_TIMEOUT]
    assert due is not None and due >= queued.timestamp() + 30 - 1e-6
    assert due == pytest.approx(queued.timestamp() + 30, abs=1e-6)


def test_a_run_timeout_counts_from_the_exact_time_the_handler_started() -> None:
    started = _at("2030-01-01T00:00:10.999999+00:00")
    ref = TaskRef(uid="u", namespace="ns", name="n")
    processing = StatusMessage(task=ref, phase=Phase.PROCESSING, at=started)
    status = st.apply(st.pending({}, "task:u:1", started, None), processing, started, None)
    due = wanted(status, SPEC)[Kind.RUN_TIMEOUT]
    assert due == pytest.approx(started.timestamp() + 60, abs=1e-6)


def test_a_retry_waits_its_whole_backoff() -> None:
    ended = _at("2030-01-01T00:00:03.250000+00:00")
    retry_at = _at("2030-01-01T00:00:08.250000+00:00")
    ref = TaskRef(uid="u", namespace="ns", name="n")
    failed = StatusMessage(task=ref, phase=Phase.ERROR, at=ended)
    status = st.retrying({"phase": "Processing"}, failed, retry_at, 2, ended, None)
    assert wanted(status, SPEC)[Kind.RETRY] == pytest.approx(retry_at.timestamp(), abs=1e-6)


def test_the_ttl_counts_from_the_exact_completion_time() -> None:
    done = _at("2030-01-01T00:00:04.500000+00:00")
    ref = TaskRef(uid="u", namespace="ns", name="n")
    succeeded = StatusMessage(task=ref, phase=Phase.SUCCEEDED, at=done)
    status = st.apply({"phase": "Processing", "attempts": 1}, succeeded, done, None)
    assert wanted(status, SPEC)[Kind.TTL] == pytest.approx(done.timestamp() + 10, abs=1e-6)
