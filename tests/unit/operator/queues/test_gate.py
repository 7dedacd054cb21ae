"""The queue gate wired into the task logic as the operator wires it, against the fake API
and broker: a queue without an AsyncQueue is untouched; under a policy a task is admitted
at once (no extra write) or held with one write and its reason, then published when
admitted; cancel and delete free it; a restart rebuilds the held set and the in-flight
count from the objects before it decides anything."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asynctask_operator.app import TaskLogic
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.ports import OperatorApi, TaskBroker
from asynctask_operator.settings import Config, LifecycleConfig
from asynctask_worker.messages import Phase
from tests.unit.operator.fakes import FakeApi, FakeBroker
from tests.unit.operator.test_tracking import Harness, until

QUEUE = "resize"


class Queued(Harness):
    """The task logic with its gate; ``synced``: as an operator once it has listed
    everything (False: as one that just started)."""

    def __init__(self, *, synced: bool = True, api: FakeApi | None = None) -> None:
        self.journal = [] if api is None else api.journal
        self.api = FakeApi(self.journal) if api is None else api
        self.broker = FakeBroker(self.journal)
        fake_api: OperatorApi = self.api
        fake_broker: TaskBroker = self.broker
        self.metrics = OperatorMetrics()
        # The publish's record written at once, as the queues here count writes.
        config = Config(lifecycle=LifecycleConfig(publish_fold_seconds=0))
        self.logic = TaskLogic.wire(config, fake_api, fake_broker, self.metrics, queues=True)
        self.tracker = self.logic.tracker
        self.inbox = self.logic.inbox
        self.gate = self.logic.gate
        if synced:
            self.gate.synced("queues")
            self.gate.synced("tasks")

    def create(self, name: str = "t1", **spec: Any) -> dict[str, Any]:
        body = super().create(name, queue=QUEUE, **spec)
        body["metadata"]["creationTimestamp"] = "2030-01-01T00:00:00Z"
        return body

    async def admit(self) -> None:
        """One turn of the gate's loop, and the tracker publishing what it admitted."""
        self.gate.decide()
        if self.gate.released.empty():
            return
        releasing = asyncio.create_task(self.tracker.releasing())
        await until(lambda: self.gate.released.empty())
        await asyncio.sleep(0.05)  # the fakes answer at once: the last one is done
        releasing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await releasing


@pytest.fixture
async def queued() -> AsyncIterator[Queued]:
    h = Queued()
    yield h
    await h.logic.webhooks.close()


def held_reason(h: Queued, name: str) -> str | None:
    status = h.body(name).get("status") or {}
    return status.get("reason") if "messageId" not in status else None


async def test_a_queue_without_an_asyncqueue_publishes_as_before(queued: Queued) -> None:
    await queued.tracker.observe(queued.create())
    assert queued.journal == ["publish t1 attempt 1", "write t1 Pending"]
    assert "reason" not in queued.api.writes[0]


async def test_a_task_admitted_at_once_costs_no_extra_write(queued: Queued) -> None:
    queued.gate.set_policy(QUEUE, {"maxInFlight": 2})
    await queued.tracker.observe(queued.create("a"))
    assert queued.journal == ["publish a attempt 1", "write a Pending"]
    assert (
        queued.metrics.value(
            "asynctask_operator_queue_decisions_total", queue=QUEUE, decision="admitted"
        )
        == 1
    )


async def test_over_the_cap_a_task_is_held_with_one_write_then_published_when_a_slot_frees(
    queued: Queued,
) -> None:
    queued.gate.set_policy(QUEUE, {"maxInFlight": 1})
    await queued.tracker.observe(queued.create("a"))
    await queued.tracker.observe(queued.create("b"))
    assert queued.journal[2:] == ["write b Pending"]  # held: nothing published
    held = queued.api.writes[-1]
    assert held["reason"] == "ConcurrencyLimit" and "messageId" not in held
    assert "1 tasks in flight" in held["message"]
    assert {c["reason"] for c in held["conditions"]} == {"ConcurrencyLimit"}
    await queued.tracker.observe(queued.body("b"))  # the watch sees its own write: nothing
    assert queued.gate.is_held("uid-b") and len(queued.journal) == 3
    await queued.send(Phase.SUCCEEDED, "a")  # a's terminal write frees its slot
    await queued.admit()
    assert queued.journal[-2:] == ["publish b attempt 1", "write b Pending"]
    published = queued.api.writes[-1]
    assert "reason" not in published and published["messageId"]
    assert published["message"] == "Waiting for a worker"
    assert {c["reason"] for c in published["conditions"]} == {"Pending"}


async def test_pause_holds_new_tasks_and_resume_publishes_them(queued: Queued) -> None:
    queued.gate.set_policy(QUEUE, {"paused": True})
    for name in ("a", "b"):
        await queued.tracker.observe(queued.create(name))
    assert held_reason(queued, "a") == "Paused" and not queued.broker.tasks
    queued.gate.set_policy(QUEUE, {"paused": False})
    await queued.admit()
    assert [m.task.name for m in queued.broker.tasks] == ["a", "b"]


async def test_cancelling_a_held_task_ends_it_unpublished_and_frees_nothing_twice(
    queued: Queued,
) -> None:
    queued.gate.set_policy(QUEUE, {"paused": True})
    await queued.tracker.observe(queued.create("a"))
    queued.body("a")["spec"]["cancel"] = True
    await queued.tracker.observe(queued.body("a"))
    assert queued.body("a")["status"]["phase"] == "Cancelled"
    assert not queued.gate.is_held("uid-a")
    queued.gate.set_policy(QUEUE, {})
    await queued.admit()
    assert not queued.broker.tasks


async def test_deleting_a_held_task_forgets_it(queued: Queued) -> None:
    queued.gate.set_policy(QUEUE, {"paused": True})
    await queued.tracker.observe(queued.create("a"))
    await queued.tracker.deleted(queued.body("a"))
    assert not queued.gate.is_held("uid-a")


async def test_deleting_the_asyncqueue_publishes_what_it_held(queued: Queued) -> None:
    queued.gate.set_policy(QUEUE, {"paused": True})
    await queued.tracker.observe(queued.create("a"))
    queued.gate.drop_policy(QUEUE)
    await queued.admit()
    assert [m.task.name for m in queued.broker.tasks] == ["a"]


async def test_a_restart_rebuilds_the_held_set_and_the_in_flight_count_first() -> None:
    first = Queued()
    first.gate.set_policy(QUEUE, {"maxInFlight": 1})
    await first.tracker.observe(first.create("running"))
    for name, priority in (("low", 0), ("high", 9), ("mid", 5)):
        await first.tracker.observe(first.create(name, priority=priority))
    assert [m.task.name for m in first.broker.tasks] == ["running"]
    second = Queued(synced=False, api=first.api)  # a new process, the same objects
    for key in list(first.api.objects):
        await second.tracker.observe(first.api.objects[key])  # the list, in any order
    second.gate.set_policy(QUEUE, {"maxInFlight": 1})
    second.gate.synced("queues")
    second.gate.synced("tasks")
    await second.admit()
    assert not second.broker.tasks  # "running" still holds the one slot
    assert second.gate.view(QUEUE).held == 3 and second.gate.view(QUEUE).in_flight == 1
    order = []
    for done in ("running", "high", "mid"):
        await second.send(Phase.SUCCEEDED, done)
        await second.admit()
        order.append(second.broker.tasks[-1].task.name)
    assert order == ["high", "mid", "low"]
    assert sum(1 for w in first.api.journal if w.startswith("write low")) == 2  # held, queued
    for h in (first, second):
        await h.logic.webhooks.close()


async def test_before_it_has_listed_everything_the_gate_decides_nothing() -> None:
    h = Queued(synced=False)
    await h.tracker.observe(h.create("a"))
    assert not h.broker.tasks and not h.api.writes  # parked: no publish, no write
    h.gate.synced("queues")
    h.gate.synced("tasks")  # no AsyncQueue for the queue: published as before
    await h.admit()
    assert h.journal[-2:] == ["publish a attempt 1", "write a Pending"]
    await h.logic.webhooks.close()


async def test_a_task_new_during_a_restart_takes_its_place_among_the_held_ones() -> None:
    """Offered before the gate is ready (parked), a new high-priority task joins the held
    set with the rebuilt ones at once: the first admission after the restart is it."""
    first = Queued()
    first.gate.set_policy(QUEUE, {"paused": True})
    for name in ("low1", "low2"):
        await first.tracker.observe(first.create(name))
    second = Queued(synced=False, api=first.api)
    for key in list(first.api.objects):
        await second.tracker.observe(first.api.objects[key])
    await second.tracker.observe(second.create("urgent", priority=50))  # parked
    assert not second.broker.tasks and len(second.api.writes) == 2  # the two held writes
    second.gate.set_policy(QUEUE, {"maxInFlight": 1})
    second.gate.synced("queues")
    second.gate.synced("tasks")
    await second.admit()
    assert [m.task.name for m in second.broker.tasks] == ["urgent"]
    await second.send(Phase.SUCCEEDED, "urgent")
    await second.admit()
    assert [m.task.name for m in second.broker.tasks] == ["urgent", "low1"]
    for h in (first, second):
        await h.logic.webhooks.close()
