"""The task logic, wired as the operator wires it, against a fake Kubernetes API and a fake
broker that record their calls (sample-controller's way of testing its reconcile).

No cluster, no RabbitMQ, no network: a webhook aimed at ``http://kubernetes/`` is refused
by the target policy before any request, which still yields a real webhook outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from asynctask_operator.app import TaskLogic
from asynctask_operator.deadlines import Kind
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.ports import Delivery, OperatorApi, PayloadStore, TaskBroker
from asynctask_operator.settings import Config, LifecycleConfig, PayloadConfig
from asynctask_worker import topology
from asynctask_worker.messages import (
    MAX_REQUEST_DEPTH,
    ErrorInfo,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    encode,
)
from tests.unit.operator.fakes import FakeApi, FakeBroker

NS = "team-a"


class Harness:
    def __init__(
        self,
        progress_interval: float = 60.0,
        events: str = "failures",
        fold: float = 0.0,
        *,
        fold_max: float = 10.0,
        payloads: PayloadConfig | None = None,
        store: PayloadStore | None = None,
    ) -> None:
        """``fold``: ASYNCTASK_PUBLISH_FOLD_SECONDS (0 here: each write made at once, as
        most tests count them; test_fold.py holds the publish's record), ``fold_max`` its
        longest extension under load (test_record_hold.py); ``payloads`` and
        ``store``: large payloads on (tests/unit/operator/payloads/)."""
        self.journal: list[str] = []
        self.api = FakeApi(self.journal)
        self.broker = FakeBroker(self.journal)
        api: OperatorApi = self.api  # the fakes satisfy the protocols the logic needs
        broker: TaskBroker = self.broker
        config = Config(
            lifecycle=LifecycleConfig.model_validate(
                {
                    "progress_patch_interval_seconds": progress_interval,
                    "events": events,
                    "publish_fold_seconds": fold,
                    "publish_fold_max_seconds": fold_max,
                }
            ),
            payloads=payloads or PayloadConfig.model_construct(),
        )
        self.metrics = OperatorMetrics()
        self.logic = TaskLogic.wire(config, api, broker, self.metrics, store=store)
        self.tracker = self.logic.tracker
        self.inbox = self.logic.inbox

    def create(self, name: str = "t1", **spec: Any) -> dict[str, Any]:
        return self.api.add(
            {
                "metadata": {"uid": f"uid-{name}", "namespace": NS, "name": name, "generation": 1},
                "spec": {"queue": "resize", "request": {"n": 1}, **spec},
            }
        )

    def body(self, name: str = "t1") -> dict[str, Any]:
        return self.api.objects[(NS, name)]

    async def send(
        self, phase: Phase, name: str = "t1", attempt: int = 1, seq: int = 0, **fields: Any
    ) -> Delivery:
        ref = TaskRef(uid=f"uid-{name}", namespace=NS, name=name)
        msg = StatusMessage(
            task=ref, attempt=attempt, seq=seq, phase=phase, at=datetime.now(UTC), **fields
        )
        delivery = Delivery(len(self.broker.acked) + 1, encode(msg), f"m-{seq}", 0)
        await self.inbox.ingest(delivery)
        return delivery

    async def settle(self) -> None:
        """Let the Events recorded so far be posted (they never block a status write)."""
        await self.logic.events.drain()

    def phases(self) -> list[str]:
        return [str(w.get("phase")) for w in self.api.writes]


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.logic.webhooks.close()


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for something that happens in the background (no fixed sleeps)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "the condition did not come true in time"
        await asyncio.sleep(0.01)


# a new task ------------------------------------------------------------------------------


async def test_a_new_task_is_published_then_written_pending_once(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    assert harness.journal == ["publish t1 attempt 1", "write t1 Pending"]
    [msg] = harness.broker.tasks
    assert isinstance(msg, TaskMessage) and msg.queue == "resize" and msg.request == {"n": 1}
    status = harness.api.writes[0]
    assert status["messageId"] == "task:uid-t1:1" and status["observedGeneration"] == 1
    await harness.tracker.observe(harness.body())  # the watch sees its own write
    assert len(harness.journal) == 2  # nothing more


@pytest.fixture
async def submitting(harness: Harness) -> AsyncIterator[Harness]:
    """The harness with one deferred-submission loop running, as the operator runs them."""
    loop = asyncio.create_task(harness.tracker.submitting())
    yield harness
    loop.cancel()


async def test_the_watch_defers_a_new_task_to_the_submitters(submitting: Harness) -> None:
    h = submitting
    await h.tracker.observe(h.create(), defer=True)
    await h.tracker.observe(h.body(), defer=True)  # seen again before its turn: queued once
    assert h.journal == []  # the watch's handler returned at once (kopf's worker can go)
    await until(lambda: len(h.journal) == 2)
    assert h.journal == ["publish t1 attempt 1", "write t1 Pending"]
    await h.tracker.observe(h.body(), defer=True)  # its own write
    await asyncio.sleep(0.05)
    assert len(h.journal) == 2


async def test_a_task_cancelled_or_deleted_while_it_waits_is_never_published(
    harness: Harness,
) -> None:
    h = harness
    await h.tracker.observe(h.create("a"), defer=True)
    await h.tracker.observe(h.create("b"), defer=True)
    await h.tracker.observe(h.create("a", cancel=True), defer=True)
    await h.tracker.deleted(h.api.objects.pop((NS, "b")))
    loop = asyncio.create_task(h.tracker.submitting())
    try:
        await until(lambda: h.tracker._submissions.empty())
        await asyncio.sleep(0.05)
    finally:
        loop.cancel()
    assert h.broker.tasks == []
    assert h.phases() == ["Cancelled"]  # a, before a worker could start it
    assert "control cancel b Deleted" in h.journal  # b: its (never sent) work is stopped


async def test_a_task_whose_message_could_not_be_published_is_tried_again(
    submitting: Harness,
) -> None:
    h = submitting
    h.tracker.config = h.tracker.config.model_copy(update={"submit_retry_seconds": 0.05})
    publish = h.broker.publish_task
    failures = [RuntimeError("the channel closed")]

    async def flaky(msg: TaskMessage) -> None:
        if failures:
            raise failures.pop()
        await publish(msg)

    h.broker.publish_task = flaky  # type: ignore[method-assign]
    await h.tracker.observe(h.create(), defer=True)
    await until(lambda: h.phases() == ["Pending"])
    assert h.journal == ["publish t1 attempt 1", "write t1 Pending"]  # once, the second time


async def test_an_invalid_spec_ends_in_error_without_publishing(harness: Harness) -> None:
    await harness.tracker.observe(harness.create(webhook={"url": "ftp://x.example/"}))
    await harness.settle()
    assert harness.journal == ["write t1 Error", "event Error"]
    assert harness.api.writes[0]["error"]["reason"] == "InvalidSpec"
    assert "spec.webhook.url" in harness.api.writes[0]["error"]["message"]


# cancellation ----------------------------------------------------------------------------


async def test_cancel_before_publishing_sends_nothing_and_ends_cancelled(harness: Harness) -> None:
    await harness.tracker.observe(harness.create(cancel=True))
    await harness.settle()
    assert harness.journal == ["write t1 Cancelled", "event Cancelled"]


async def test_cancel_while_queued_tells_workers_and_ends_cancelled(harness: Harness) -> None:
    harness.tracker.cancel_start_wait = 0.1  # a worker's start report: none comes
    await harness.tracker.observe(harness.create())
    harness.body()["spec"]["cancel"] = True
    await harness.tracker.observe(harness.body())
    await until(lambda: "write t1 Cancelled" in harness.journal)
    await harness.settle()
    assert harness.journal[2:] == [
        "control cancel t1 CancelRequested",
        "write t1 Cancelled",
        "event Cancelled",
    ]


async def test_cancel_while_running_waits_for_the_worker_then_gives_up(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    await harness.send(Phase.PROCESSING)
    harness.body()["spec"]["cancel"] = True
    await harness.tracker.observe(harness.body())
    assert harness.journal[-1] == "control cancel t1 CancelRequested"
    assert harness.phases() == ["Pending", "Processing"]  # the worker has its grace period
    assert harness.logic.timers.due("uid-t1", Kind.CANCEL_CONFIRM) is not None
    await harness.tracker.observe(harness.body())  # seen again: no second control message
    assert harness.journal.count("control cancel t1 CancelRequested") == 1
    await harness.tracker.fire("uid-t1", Kind.CANCEL_CONFIRM)
    assert harness.phases() == ["Pending", "Processing", "Cancelled"]


async def test_a_cancel_waiting_for_a_status_lane_is_cancelled_and_awaited_at_stop() -> None:
    """A cancel of a task whose publish's record is held waits for the task's status lane
    (a worker may have started it). The operator's stop cancels that wait and awaits it:
    nothing of it runs on, and nothing is written for it (the next operator, listing the
    task with spec.cancel, cancels it then)."""
    h = Harness(fold=5.0)  # the publish's record is held
    reached, stopped = asyncio.Event(), asyncio.Event()

    async def lane_never_drains(uid: str) -> None:
        reached.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            stopped.set()
            raise

    h.tracker.flush_status = lane_never_drains
    await h.tracker.observe(h.create())
    await h.tracker.observe(h.create(cancel=True))
    await asyncio.wait_for(reached.wait(), 5)  # generous: it runs at the next loop turn
    assert not stopped.is_set()
    await asyncio.wait_for(h.tracker.stop(), 5)  # generous: a cancel, one loop turn
    assert stopped.is_set()
    assert h.api.writes == []  # nothing written after the stop
    await h.logic.webhooks.close()


# worker messages -------------------------------------------------------------------------


async def test_duplicate_and_late_messages_are_ignored_and_acked(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    await harness.send(Phase.PROCESSING, seq=0)
    await harness.send(Phase.PROCESSING, seq=0)  # a redelivery
    await harness.send(Phase.SUCCEEDED, seq=2, result={"ok": True})
    await harness.send(Phase.PROCESSING, seq=1, progress=50)  # late
    assert harness.phases() == ["Pending", "Processing", "Succeeded"]
    assert len(harness.broker.acked) == 4 and harness.broker.refused == []
    assert harness.metrics.value("asynctask_operator_status_messages_total", result="ignored") == 2


async def test_a_worker_running_a_finished_attempt_is_told_to_stop_once(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    await harness.send(Phase.SUCCEEDED, seq=1)
    await harness.send(Phase.PROCESSING, seq=0)  # a duplicate delivery started elsewhere
    await harness.send(Phase.PROCESSING, seq=0)
    assert [c.reason for c in harness.broker.controls] == ["Succeeded"]


async def test_progress_is_coalesced_and_the_newest_is_written_later() -> None:
    h = Harness(progress_interval=0.2)
    try:
        await h.tracker.observe(h.create())
        await h.send(Phase.PROCESSING, seq=0)
        for seq, progress in enumerate((10, 20, 30), start=1):
            await h.send(Phase.PROCESSING, seq=seq, progress=progress)
        assert h.phases() == ["Pending", "Processing"]  # held back, and acked meanwhile
        assert len(h.broker.acked) == 4
        await until(lambda: len(h.api.writes) == 3)
        assert h.api.writes[-1]["progress"] == 30  # only the newest
        assert h.metrics.value("asynctask_operator_status_messages_total", result="coalesced") == 3
    finally:
        await h.logic.webhooks.close()


async def test_a_terminal_write_ends_coalescing() -> None:
    h = Harness(progress_interval=30)
    try:
        await h.tracker.observe(h.create())
        await h.send(Phase.PROCESSING, seq=0)
        await h.send(Phase.PROCESSING, seq=1, progress=40)
        task = h.logic.table.get("uid-t1")
        assert task is not None and task.coalesced_progress is not None
        await h.send(Phase.SUCCEEDED, seq=2)
        assert h.phases() == ["Pending", "Processing", "Succeeded"]
        assert task.coalesced_progress is None and task.flush is None  # nothing left to write
    finally:
        await h.logic.webhooks.close()


async def test_an_error_with_retries_left_waits_then_publishes_the_next_attempt(
    harness: Harness,
) -> None:
    await harness.tracker.observe(harness.create(retries=1, retryBackoffSeconds=1))
    await harness.send(Phase.PROCESSING)
    await harness.send(Phase.ERROR, seq=1, error=ErrorInfo(reason="Boom"))
    pending = harness.api.writes[-1]
    assert pending["phase"] == "Pending" and pending["nextAttempt"] == 2
    await harness.settle()
    assert harness.journal[-1] == "event Retrying"
    assert harness.logic.timers.due("uid-t1", Kind.RETRY) is not None
    await harness.tracker.fire("uid-t1", Kind.RETRY)
    assert harness.broker.tasks[-1].attempt == 2


async def test_malformed_messages_are_rejected_and_orphans_stop_their_work(
    harness: Harness,
) -> None:
    bad = Delivery(1, b"{not json", "bad", 0)
    await harness.inbox.ingest(bad)
    assert [(d, reason) for d, reason, _ in harness.broker.refused] == [(bad, "NotJson")]
    orphan = await harness.send(Phase.PROCESSING, name="never-created")
    assert harness.broker.acked == [orphan]
    assert harness.journal[-1] == "control cancel never-created Deleted"


# deletion, dead letters, refused writes --------------------------------------------------


async def test_a_deleted_unfinished_task_has_its_work_cancelled(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    await harness.send(Phase.PROCESSING)
    await harness.tracker.deleted(harness.api.objects.pop((NS, "t1")))
    assert harness.journal[-1] == "control cancel t1 Deleted"
    assert harness.logic.table.get("uid-t1") is None
    assert harness.logic.timers.due("uid-t1", Kind.QUEUE_TIMEOUT) is None


async def test_a_deleted_finished_task_needs_nothing(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    await harness.send(Phase.SUCCEEDED, seq=1)
    calls = len(harness.journal)
    await harness.tracker.deleted(harness.api.objects.pop((NS, "t1")))
    assert len(harness.journal) == calls


async def test_a_dead_lettered_task_message_ends_the_task_in_error(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    [msg] = harness.broker.tasks
    dead = Delivery(
        9,
        encode(msg),
        msg.message_id,
        0,
        queue=topology.DEAD_TASKS_QUEUE,
        headers={"x-death": [{"reason": b"delivery_limit"}]},
    )
    await harness.inbox.dead_letter(dead)
    assert harness.broker.acked == [dead]
    error = harness.api.writes[-1]
    assert error["phase"] == "Error" and error["error"]["reason"] == "DeliveryLimitExceeded"
    await harness.settle()
    assert harness.journal[-2:] == ["event Error", "event DeadLettered"]


async def test_an_unreadable_dead_letter_still_ends_its_task_with_why(harness: Harness) -> None:
    # A request nested deeper than pydantic's JSON parser goes: the worker could not read
    # the message, refused it with a reason, and neither can the operator read the body.
    await harness.tracker.observe(harness.create())
    [msg] = harness.broker.tasks
    body = b'{"v": 1, "kind": "task", "request": ' + b"[" * 300 + b"]" * 300 + b"}"
    headers = {
        "x-asynctask-dead-reason": "TooDeep",
        "x-asynctask-dead-by": "worker w1",
        "x-asynctask-dead-detail": "Invalid JSON: recursion limit exceeded",
        "asynctask-uid": "uid-t1",
        "asynctask-namespace": NS,
        "asynctask-name": "t1",
        "asynctask-attempt": 1,
    }
    dead = Delivery(9, body, msg.message_id, 0, queue=topology.DEAD_TASKS_QUEUE, headers=headers)
    await harness.inbox.dead_letter(dead)
    assert harness.broker.acked == [dead]
    error = harness.api.writes[-1]
    assert error["phase"] == "Error" and error["error"]["reason"] == "MalformedTaskMessage"
    assert "TooDeep" in error["error"]["message"] and "worker w1" in error["error"]["message"]


async def test_an_unreadable_dead_letter_without_headers_is_found_by_its_message_id(
    harness: Harness,
) -> None:
    await harness.tracker.observe(harness.create())
    dead = Delivery(
        9,
        b"\xff garbage",
        "task:uid-t1:1",
        0,
        queue=topology.DEAD_TASKS_QUEUE,
        headers={"x-death": [{"reason": b"rejected"}]},
    )
    await harness.inbox.dead_letter(dead)
    assert harness.broker.acked == [dead]
    error = harness.api.writes[-1]
    assert error["phase"] == "Error" and error["error"]["reason"] == "MalformedTaskMessage"
    assert "NotUtf8" in error["error"]["message"]


async def test_a_request_nested_too_deep_for_the_wire_ends_at_submit(harness: Harness) -> None:
    deep: Any = 1
    for _ in range(MAX_REQUEST_DEPTH + 1):
        deep = [deep]
    await harness.tracker.observe(harness.create(request=deep))
    assert harness.broker.tasks == []
    error = harness.api.writes[-1]
    assert error["phase"] == "Error" and error["error"]["reason"] == "RequestTooDeep"
    assert f"{MAX_REQUEST_DEPTH + 1} levels" in error["error"]["message"]
    fine: Any = 1
    for _ in range(MAX_REQUEST_DEPTH):
        fine = [fine]
    await harness.tracker.observe(harness.create("t2", request=fine))
    assert len(harness.broker.tasks) == 1


async def test_a_refused_status_is_replaced_by_a_status_rejected_error(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    await harness.send(Phase.PROCESSING)
    harness.api.reject_next = "status.result: Too long: must have at most 65536 bytes"
    await harness.send(Phase.SUCCEEDED, seq=1, result={"blob": "x" * 10})
    await harness.settle()
    assert harness.journal[-3:] == ["write t1 Succeeded", "write t1 Error", "event Error"]
    final = harness.api.writes[-1]
    assert final["error"]["reason"] == "StatusRejected" and "result" not in final
    assert "at most 65536 bytes" in final["error"]["message"]
    assert harness.metrics.value("asynctask_operator_status_writes_total", result="rejected") == 1


async def test_a_task_gone_while_writing_is_forgotten(harness: Harness) -> None:
    await harness.tracker.observe(harness.create())
    del harness.api.objects[(NS, "t1")]
    await harness.send(Phase.PROCESSING)
    assert harness.logic.table.get("uid-t1") is None
    assert harness.metrics.value("asynctask_operator_status_writes_total", result="gone") == 1


async def test_the_ttl_deletes_a_finished_task(harness: Harness) -> None:
    await harness.tracker.observe(harness.create(ttlSecondsAfterFinished=0))
    await harness.send(Phase.SUCCEEDED, seq=1)
    assert harness.logic.timers.due("uid-t1", Kind.TTL) is not None
    await harness.tracker.fire("uid-t1", Kind.TTL)
    assert harness.api.deleted == ["t1"]


# webhook outcomes ------------------------------------------------------------------------


async def test_a_webhook_outcome_is_recorded_with_one_extra_write(harness: Harness) -> None:
    outcomes = asyncio.create_task(harness.logic.webhook_outcomes.consume(harness.logic.outcomes))
    try:
        await harness.tracker.observe(harness.create(webhook={"url": "http://kubernetes/h"}))
        await harness.logic.webhooks.drain(5)
        await harness.send(Phase.PROCESSING)
        await harness.logic.webhooks.drain(5)
        await harness.send(Phase.SUCCEEDED, seq=1)
        await harness.logic.webhooks.drain(5)
        await until(lambda: len(harness.api.writes) == 4)
        assert harness.phases() == ["Pending", "Processing", "Succeeded", "Succeeded"]
        last = harness.api.writes[-1]["webhook"]
        assert last["lastEventId"] == "uid-t1.1.succeeded" and not last["delivered"]
        assert "refused" in last["lastError"]
        # The Pending event's outcome rode along with the Processing write: no write of its own.
        assert harness.api.writes[1]["webhook"]["lastEventId"] == "uid-t1.1.pending"
        assert (
            harness.metrics.value("asynctask_operator_webhook_deliveries_total", outcome="failed")
            == 3
        )
    finally:
        outcomes.cancel()
