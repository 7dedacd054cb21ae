"""One status write for a task that ends quickly: the record of a new task's publish (its
Pending) waits for the task's end (``ASYNCTASK_PUBLISH_FOLD_SECONDS``) and rides along
with it; a task that takes longer shows Pending (and Processing) as ever."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from asynctask_operator.lanes import Lanes
from asynctask_worker.messages import Phase
from tests.unit.operator.queues.test_gate import QUEUE, Queued
from tests.unit.operator.test_lanes import Consuming, delivery
from tests.unit.operator.test_tracking import Harness, until

FOLDED = "asynctask_operator_records_folded_total"


@pytest.fixture
async def folding() -> AsyncIterator[Consuming]:
    """The harness with the longest publish fold window, 5 s (no test waits it out)."""
    c = Consuming(Harness(fold=5.0))
    yield c
    c.loop.cancel()
    await c.h.logic.webhooks.close()


async def test_a_task_that_ends_within_the_window_costs_one_write(folding: Consuming) -> None:
    h = folding.h
    await h.tracker.observe(h.create())
    assert h.journal == ["publish t1 attempt 1"]  # published, not yet recorded
    assert h.body().get("status") is None
    folding.queue.put_nowait(delivery(Phase.PROCESSING, tag=1, worker="w/1"))
    await asyncio.sleep(0.05)  # the start waits (the window is 5 s): its end comes
    await folding.deliver(delivery(Phase.SUCCEEDED, seq=1, tag=2, result={"r": 1}))
    assert h.phases() == ["Succeeded"]
    [written] = h.api.writes
    # the one write says all the Pending and Processing writes would have said
    assert written["messageId"] == "task:uid-t1:1" and written["queuedTime"]
    assert written["startTime"] and written["attempts"] == 1 and written["worker"] == "w/1"
    assert written["result"] == {"r": 1} and written["progress"] == 100
    assert sorted(d.tag for d in h.broker.acked) == [1, 2]  # acked after that write
    assert h.metrics.value(FOLDED) == 1


async def test_a_lingering_start_goes_as_soon_as_its_end_comes(folding: Consuming) -> None:
    h = folding.h
    await h.tracker.observe(h.create())
    began = time.monotonic()
    await folding.deliver(
        delivery(Phase.PROCESSING, tag=1), delivery(Phase.SUCCEEDED, seq=1, tag=2)
    )
    assert h.phases() == ["Succeeded"]
    assert time.monotonic() - began < 4  # not the 5 s window: the end ended the wait


async def test_a_task_still_waiting_at_the_windows_end_is_written_pending() -> None:
    h = Harness(fold=0.2)
    await h.tracker.observe(h.create())
    assert h.api.writes == []
    await until(lambda: h.phases() == ["Pending"])  # by the window's timer
    assert h.api.writes[0]["messageId"] == "task:uid-t1:1"
    await h.send(Phase.PROCESSING)
    await h.send(Phase.SUCCEEDED, seq=1)
    assert h.phases() == ["Pending", "Processing", "Succeeded"]
    assert h.metrics.value(FOLDED) == 0
    assert h.metrics.value("asynctask_operator_records_held_longer_total") == 0  # idle
    await h.logic.webhooks.close()


async def test_a_task_that_starts_but_does_not_end_shows_pending_then_processing() -> None:
    h = Harness(fold=5.0)
    await h.tracker.observe(h.create())
    await h.send(Phase.PROCESSING)  # handed over alone (no lane): not terminal
    assert h.phases() == ["Pending", "Processing"]  # the record first, as ever
    first, second = h.api.writes
    assert first["queuedTime"] == second["queuedTime"] and "startTime" not in first
    await h.send(Phase.SUCCEEDED, seq=1)
    assert h.phases() == ["Pending", "Processing", "Succeeded"]
    await h.logic.webhooks.close()


async def test_a_task_cancelled_within_the_window_is_written_once() -> None:
    h = Harness(fold=5.0)
    await h.tracker.observe(h.create())
    await h.tracker.observe(h.create(cancel=True))
    await until(lambda: h.phases() == ["Cancelled"])  # its status lane is empty: at once
    assert h.api.writes[0]["error"]["reason"] == "CancelRequested"
    assert h.api.writes[0]["messageId"] == "task:uid-t1:1"
    assert [c.action for c in h.broker.controls] == ["cancel"]  # it was published: stop it
    await h.logic.webhooks.close()


async def test_a_cancel_reads_a_start_lingering_in_the_lane_before_it_decides(
    folding: Consuming,
) -> None:
    """A worker started the task; its Processing waits in the status lane for the fold
    window when the cancel comes. The cancel applies it first, so the task is not said to
    have been cancelled before a worker started it: the worker's own Cancelled ends it."""
    h = folding.h
    await h.tracker.observe(h.create())
    folding.queue.put_nowait(delivery(Phase.PROCESSING, tag=1, worker="w/1"))
    await until(lambda: len(h.inbox.lanes) == 1)  # lingering (the window is 5 s)
    began = time.monotonic()
    await h.tracker.observe(h.create(cancel=True))
    await until(lambda: h.phases() == ["Pending", "Processing"])
    assert time.monotonic() - began < 4  # not the 5 s window: the cancel hurried it
    assert [c.action for c in h.broker.controls] == ["cancel"]
    await folding.deliver(delivery(Phase.CANCELLED, seq=1, tag=2, error={"reason": "Stopped"}))
    assert h.phases() == ["Pending", "Processing", "Cancelled"]
    assert h.api.writes[-1]["error"]["reason"] == "Stopped"


async def test_the_queue_timeout_counts_from_the_publish_not_the_write() -> None:
    h = Harness(fold=5.0)
    await h.tracker.observe(h.create(queueTimeoutSeconds=60))
    held = h.tracker.table.get("uid-t1")
    assert held is not None and held.recorded is not None
    queued = held.status["queuedTime"]
    await h.logic.writer.record_all()
    assert h.api.writes[0]["queuedTime"] == queued
    await h.logic.webhooks.close()


async def test_a_restart_before_the_record_publishes_the_same_message_again() -> None:
    """An operator killed between the publish and its record: the next one sees no phase
    and publishes again, with the same message id (at-least-once; a worker that ran the
    first copy acks the second without running it)."""
    first = Harness(fold=5.0)
    body = first.create()
    await first.tracker.observe(body)
    assert first.api.writes == [] and body.get("status") is None
    again = Harness(fold=5.0)
    again.api.add(body)
    await again.tracker.observe(body)
    [one], [two] = first.broker.tasks, again.broker.tasks
    assert one.message_id == two.message_id == "task:uid-t1:1"
    assert one.task == two.task and one.attempt == two.attempt == 1
    await again.send(Phase.PROCESSING)  # the first copy's start, redelivered to it
    await again.send(Phase.SUCCEEDED, seq=1)
    assert again.phases() == ["Pending", "Processing", "Succeeded"]
    for h in (first, again):
        await h.logic.webhooks.close()


async def test_a_graceful_stop_writes_every_held_record() -> None:
    h = Harness(fold=5.0)
    for name in ("a", "b"):
        await h.tracker.observe(h.create(name))
    assert await h.logic.writer.record_all() == 2
    assert h.phases() == ["Pending", "Pending"]
    assert await h.logic.writer.record_all() == 0
    await h.logic.webhooks.close()


async def test_tasks_with_a_webhook_are_recorded_at_once() -> None:
    h = Harness(fold=5.0)
    await h.tracker.observe(h.create(webhook={"url": "http://kubernetes/h"}))
    assert h.phases() == ["Pending"]  # an event to its receiver
    await h.logic.webhooks.close()


async def test_a_held_record_makes_a_lane_wait_for_the_windows_end(folding: Consuming) -> None:
    h = folding.h
    await h.tracker.observe(h.create())
    wait = h.inbox.linger([delivery(Phase.PROCESSING, seq=3, progress=40)])
    assert 3 < wait <= 5  # what is left of the task's window, not the start's 50 ms
    assert h.inbox.linger([delivery(Phase.SUCCEEDED, seq=4)]) == 0.0


async def test_a_lane_asked_again_on_each_arrival_goes_when_linger_says_so() -> None:
    seen: list[list[int]] = []

    async def handle(key: str, batch: list[int]) -> None:
        seen.append(batch)

    lanes: Lanes[int] = Lanes(handle, linger=lambda batch: 30.0 if batch[-1] < 3 else 0.0)
    lanes.submit("k", 1)
    await asyncio.sleep(0.01)
    lanes.submit("k", 2)  # still lingering: joins the batch
    await asyncio.sleep(0.01)
    lanes.submit("k", 3)  # linger says the batch is complete
    await asyncio.wait_for(lanes.join(), 10)  # far less than the 30 s asked first
    assert seen == [[1, 2, 3]]


async def test_tasks_under_an_asyncqueue_are_recorded_at_once() -> None:
    """The gate counts in flight, after a restart, the tasks whose publish is recorded: a
    task published but not recorded would let it admit past maxInFlight."""
    q = Queued()
    q.tracker.config.publish_fold_seconds = 5.0
    q.gate.set_policy(QUEUE, {"maxInFlight": 2})
    await q.tracker.observe(q.create())
    assert q.journal == ["publish t1 attempt 1", "write t1 Pending"]
    await q.logic.webhooks.close()
