"""Per-task lanes: one task's messages in order (folded into fewer writes where nothing is
lost), different tasks' writes at once. The inbox is driven through ``consume``, as the
operator drives it, against the fakes of ``test_tracking``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from asynctask_operator.deadlines import Kind
from asynctask_operator.inbox import lane_key
from asynctask_operator.lanes import Lanes
from asynctask_operator.ports import Delivery
from asynctask_worker import topology
from asynctask_worker.messages import ErrorInfo, Phase, StatusMessage, TaskRef, encode
from tests.unit.operator.test_tracking import NS, Harness, until


def delivery(phase: Phase, name: str = "t1", seq: int = 0, tag: int = 0, **fields: Any) -> Delivery:
    msg = StatusMessage(
        task=TaskRef(uid=f"uid-{name}", namespace=NS, name=name),
        attempt=1,
        seq=seq,
        phase=phase,
        at=datetime.now(UTC),
        **fields,
    )
    return Delivery(tag, encode(msg), msg.message_id, 0)


class Consuming:
    """The harness with its inbox consuming a queue, as the operator runs it."""

    def __init__(self, harness: Harness) -> None:
        self.h = harness
        self.queue: asyncio.Queue[Delivery] = asyncio.Queue()
        self.loop = asyncio.create_task(harness.inbox.consume(self.queue))

    async def deliver(self, *deliveries: Delivery) -> None:
        for d in deliveries:
            self.queue.put_nowait(d)
        await until(lambda: self.queue.empty())
        await asyncio.sleep(0)  # the consumer hands the last one to its lane
        await self.h.inbox.lanes.join()


@pytest.fixture
async def consuming() -> AsyncIterator[Consuming]:
    c = Consuming(Harness())
    yield c
    c.loop.cancel()
    await c.h.logic.webhooks.close()


async def test_one_keys_items_come_in_order_and_in_batches_while_others_go_ahead() -> None:
    seen: list[tuple[str, list[int]]] = []
    gate = asyncio.Event()

    async def handle(key: str, batch: list[int]) -> None:
        if key == "slow" and not gate.is_set():
            await gate.wait()
        seen.append((key, batch))

    lanes: Lanes[int] = Lanes(handle)
    lanes.submit("slow", 1)
    await asyncio.sleep(0)  # the slow lane has taken its first batch and waits
    for item in (2, 3):
        lanes.submit("slow", item)
    lanes.submit("fast", 10)
    await until(lambda: ("fast", [10]) in seen)
    assert len(lanes) == 1  # the fast lane ran dry and was dropped; the slow one waits
    gate.set()
    await lanes.join()
    assert seen == [("fast", [10]), ("slow", [1]), ("slow", [2, 3])]
    assert len(lanes) == 0


async def test_a_failing_batch_is_logged_and_the_lane_goes_on() -> None:
    seen: list[int] = []

    async def handle(key: str, batch: list[int]) -> None:
        if batch == [1]:
            raise RuntimeError("boom")
        seen.extend(batch)

    lanes: Lanes[int] = Lanes(handle)
    lanes.submit("k", 1)
    await asyncio.sleep(0)
    lanes.submit("k", 2)
    await lanes.join()
    assert seen == [2]


def test_the_lane_of_a_delivery_is_its_task_from_the_message_id() -> None:
    assert lane_key(Delivery(1, b"", "status:abc:1:4", 0)) == "abc"
    assert lane_key(Delivery(1, b"", "task:abc:2", 0, topology.DEAD_TASKS_QUEUE)) == "abc"
    assert lane_key(Delivery(1, b"", None, 0)) == ""
    assert lane_key(Delivery(1, b"", "something-else", 0)) == ""


async def test_a_task_done_before_its_processing_write_is_written_once(
    consuming: Consuming,
) -> None:
    h = consuming.h
    await h.tracker.observe(h.create())
    task = h.logic.table.get("uid-t1")
    assert task is not None
    async with task.lock:  # e.g. the Pending write still in flight
        start, done = (
            delivery(Phase.PROCESSING, tag=1),
            delivery(Phase.SUCCEEDED, seq=1, tag=2, result={"ok": True}),
        )
        consuming.queue.put_nowait(start)
        consuming.queue.put_nowait(done)
        await until(lambda: consuming.queue.empty())
        await asyncio.sleep(0.01)
        assert h.broker.acked == []  # nothing acked before its write
    await h.inbox.lanes.join()
    assert h.phases() == ["Pending", "Succeeded"]
    final = h.api.writes[-1]
    assert final["attempts"] == 1 and final["startTime"] and final["completionTime"]
    assert final["result"] == {"ok": True}
    assert h.broker.acked == [start, done]
    assert h.metrics.value("asynctask_operator_status_messages_total", result="folded") == 1


async def test_a_task_with_a_webhook_gets_every_phase_written(consuming: Consuming) -> None:
    h = consuming.h
    await h.tracker.observe(h.create(webhook={"url": "http://kubernetes/h"}))
    task = h.logic.table.get("uid-t1")
    assert task is not None
    async with task.lock:
        consuming.queue.put_nowait(delivery(Phase.PROCESSING, tag=1))
        consuming.queue.put_nowait(delivery(Phase.SUCCEEDED, seq=1, tag=2))
        await until(lambda: consuming.queue.empty())
    await h.inbox.lanes.join()
    # Each phase is an event to its receiver: nothing is folded.
    assert h.phases()[:3] == ["Pending", "Processing", "Succeeded"]


async def test_a_retry_in_a_batch_writes_the_start_first(consuming: Consuming) -> None:
    h = consuming.h
    await h.tracker.observe(h.create(retries=1))
    task = h.logic.table.get("uid-t1")
    assert task is not None
    async with task.lock:
        consuming.queue.put_nowait(delivery(Phase.PROCESSING, tag=1))
        consuming.queue.put_nowait(
            delivery(Phase.ERROR, seq=1, tag=2, error=ErrorInfo(reason="Boom"))
        )
        await until(lambda: consuming.queue.empty())
    await h.inbox.lanes.join()
    assert h.phases() == ["Pending", "Processing", "Pending"]
    assert h.api.writes[-1]["nextAttempt"] == 2


async def test_different_tasks_are_written_at_once_and_each_in_order(consuming: Consuming) -> None:
    h = consuming.h
    for name in ("a", "b"):
        await h.tracker.observe(h.create(name))
    gate = asyncio.Event()
    write = h.api.replace_status

    async def slow_for_a(
        namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        if name == "a":
            await gate.wait()
        return await write(namespace, name, uid, status)

    h.api.replace_status = slow_for_a  # type: ignore[method-assign]
    consuming.queue.put_nowait(delivery(Phase.PROCESSING, "a", tag=1))
    consuming.queue.put_nowait(delivery(Phase.PROCESSING, "b", tag=2))
    await until(lambda: "write b Processing" in h.journal)  # b did not wait for a
    consuming.queue.put_nowait(delivery(Phase.SUCCEEDED, "a", seq=1, tag=3))
    await asyncio.sleep(0.01)
    assert [d.tag for d in h.broker.acked] == [2]
    gate.set()
    await until(lambda: len(h.broker.acked) == 3)
    await h.inbox.lanes.join()
    mine = [line for line in h.journal if line.startswith("write a")]
    assert mine == ["write a Pending", "write a Processing", "write a Succeeded"]


async def test_a_finished_task_keeps_no_result_or_request_in_memory(consuming: Consuming) -> None:
    h = consuming.h
    await h.tracker.observe(h.create(request={"big": "x" * 1000}))
    task = h.logic.table.get("uid-t1")
    assert task is not None and task.request_value() == {"big": "x" * 1000}  # for retries
    await consuming.deliver(delivery(Phase.SUCCEEDED, seq=1, tag=1, result={"r": "y" * 1000}))
    assert h.api.writes[-1]["result"] == {"r": "y" * 1000}  # the object has it all
    task = h.logic.table.get("uid-t1")
    assert task is not None and task.spec is not None
    assert "result" not in task.status and task.status["phase"] == "Succeeded"
    assert task.request is None
    await h.tracker.observe(h.body())  # the watch brings the whole object back
    assert "result" not in task.status and task.request is None


async def test_a_failed_write_leaves_its_messages_unacked_for_redelivery(
    consuming: Consuming,
) -> None:
    h = consuming.h
    await h.tracker.observe(h.create())
    write = h.api.replace_status

    async def fails(namespace: str, name: str, uid: str, status: dict[str, Any]) -> dict[str, Any]:
        # Not an outage (those are waited out in place: test_inbox_outage.py), a failure.
        raise RuntimeError("the write failed")

    h.api.replace_status = fails  # type: ignore[method-assign]
    start, done = delivery(Phase.PROCESSING, tag=1), delivery(Phase.SUCCEEDED, seq=1, tag=2)
    await consuming.deliver(start, done)
    assert h.broker.acked == [] and h.phases() == ["Pending"]
    h.api.replace_status = write  # type: ignore[method-assign]
    await consuming.deliver(start, done)  # the redelivery
    assert h.phases() == ["Pending", "Succeeded"] and h.broker.acked == [start, done]


async def test_a_late_watch_event_of_a_failed_attempt_never_undoes_its_retry(
    consuming: Consuming,
) -> None:
    # Writes of one task now go out back to back (a batch), so the watch event of the
    # Processing write may arrive after the retry's Pending write: it must not win.
    h = consuming.h
    await h.tracker.observe(h.create(retries=1, retryBackoffSeconds=1))
    task = h.logic.table.get("uid-t1")
    assert task is not None
    await consuming.deliver(delivery(Phase.PROCESSING, tag=1))
    stale = {**h.body(), "status": dict(h.body()["status"])}  # as the watch saw Processing
    await consuming.deliver(delivery(Phase.ERROR, seq=1, tag=2, error=ErrorInfo(reason="B")))
    assert task.status["phase"] == "Pending" and task.status["nextAttempt"] == 2
    await h.tracker.observe(stale)  # the late event
    assert task.status["phase"] == "Pending" and task.status["nextAttempt"] == 2
    await h.tracker.fire("uid-t1", Kind.RETRY)
    assert h.broker.tasks[-1].attempt == 2


async def test_a_lane_asked_to_linger_hands_over_what_came_meanwhile_in_the_same_batch() -> None:
    seen: list[list[int]] = []

    async def handle(key: str, batch: list[int]) -> None:
        seen.append(batch)

    lanes: Lanes[int] = Lanes(handle, linger=lambda batch: 0.2 if batch[-1] == 1 else 0.0)
    lanes.submit("k", 1)
    await asyncio.sleep(0.01)  # well inside the 0.2 s the lane waits
    lanes.submit("k", 2)
    await lanes.join()
    lanes.submit("k", 3)  # no lingering for this one
    await lanes.join()
    assert seen == [[1, 2], [3]]


async def test_a_start_waits_for_its_end_and_both_are_written_once(consuming: Consuming) -> None:
    h = consuming.h
    h.inbox.fold_window_seconds = 0.2
    await h.tracker.observe(h.create())
    consuming.queue.put_nowait(delivery(Phase.PROCESSING, tag=1))
    await asyncio.sleep(0.01)  # the end comes well inside the fold window
    await consuming.deliver(delivery(Phase.SUCCEEDED, seq=1, tag=2, result={"r": 1}))
    assert h.phases() == ["Pending", "Succeeded"]
    assert h.api.writes[-1]["startTime"] and h.api.writes[-1]["attempts"] == 1
    assert sorted(d.tag for d in h.broker.acked) == [1, 2]


async def test_progress_and_ends_are_never_held(consuming: Consuming) -> None:
    h = consuming.h
    h.inbox.fold_window_seconds = 30.0  # a test that waited for it would time out
    await h.tracker.observe(h.create())
    assert h.inbox.linger([delivery(Phase.PROCESSING, seq=1, progress=50)]) == 0.0
    assert h.inbox.linger([delivery(Phase.SUCCEEDED, seq=2)]) == 0.0
    assert h.inbox.linger([delivery(Phase.PROCESSING)]) == 30.0  # a start
    h.inbox.fold_window_seconds = 0.0
    await consuming.deliver(delivery(Phase.PROCESSING, tag=1))
    assert h.phases() == ["Pending", "Processing"]  # no window: the start is written at once
