"""The AsyncQueue watch's sink and status writer (queue_watch), against fakes: each spec
reaches the gate at once, a pause or resume is an Event, a queue gone from a new list is
dropped, and the status is written only when it changed."""

from __future__ import annotations

from typing import Any, cast

from asynctask_operator.apiserver.apiclient import ApiClient
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.queue_watch import QueueWatch
from asynctask_operator.queues.gate import QueueGate


class FakeQueues:
    def __init__(self) -> None:
        self.patches: list[tuple[str, dict[str, Any]]] = []
        self.events: list[dict[str, Any]] = []

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> None:
        self.patches.append((name, status))

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        self.events.append(body)

    async def queue_depth(self, task_queue: str) -> tuple[int, int]:
        return 4, 2


def obj(name: str, generation: int = 1, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "generation": generation},
        "spec": spec,
    }


def watch(*, writes: bool = True) -> tuple[QueueWatch, QueueGate, FakeQueues]:
    metrics = OperatorMetrics()
    gate = QueueGate(metrics, wait_for_sync=False)
    fake = FakeQueues()
    client = cast(ApiClient, object())  # the list+watch is not run here
    return QueueWatch(client, fake, fake, gate, metrics, writes=writes), gate, fake


async def test_a_spec_reaches_the_gate_and_a_pause_is_an_event() -> None:
    qw, gate, fake = watch()
    qw.event("ADDED", obj("q", maxInFlight=2))
    assert gate.policy("q") is not None and gate.policy("q").max_in_flight == 2  # type: ignore[union-attr]
    qw.event("MODIFIED", obj("q", 2, maxInFlight=2, paused=True))
    assert gate.policy("q").paused  # type: ignore[union-attr]
    qw.event("MODIFIED", obj("q", 3, maxInFlight=2))
    await qw._events.join()
    assert [e["reason"] for e in fake.events] == ["Paused", "Resumed"]
    assert fake.events[0]["involvedObject"]["kind"] == "AsyncQueue"


async def test_the_status_is_written_when_it_changed_only() -> None:
    qw, _, fake = watch()
    qw.event("ADDED", obj("q", maxInFlight=2))
    await qw.report("q")
    await qw.report("q")
    assert len(fake.patches) == 1
    name, status = fake.patches[0]
    assert name == "q" and status["ready"] == 4 and status["consumers"] == 2
    qw.event("MODIFIED", obj("q", 2, maxInFlight=3))
    await qw.report("q")
    assert len(fake.patches) == 2 and fake.patches[1][1]["observedGeneration"] == 2


async def test_a_shard_applies_the_policy_but_writes_no_status_and_no_event() -> None:
    """ASYNCTASK_QUEUE_STATUS=false (every shard but one): an AsyncQueue is cluster-scoped,
    one object for every shard, and a shard's figures (its namespaces' tasks, its virtual
    host's queue) are not the queue's."""
    qw, gate, fake = watch(writes=False)
    qw.event("ADDED", obj("q", maxInFlight=2))
    qw.event("MODIFIED", obj("q", 2, maxInFlight=2, paused=True))
    assert gate.policy("q").paused  # type: ignore[union-attr]
    await qw.report("q")
    await qw._events.join()
    assert fake.patches == [] and fake.events == []
    sample = qw.metrics.registry.get_sample_value  # its own figures are still its metrics
    assert sample("asynctask_operator_queue_in_flight", {"queue": "q"}) == 0.0


async def test_a_queue_missing_from_a_new_list_or_deleted_is_dropped() -> None:
    qw, gate, _ = watch()
    qw.event("ADDED", obj("a", paused=True))
    qw.event("ADDED", obj("b", paused=True))
    qw.listed(None, {"uid-b"})
    assert gate.policy("a") is None and gate.policy("b") is not None
    qw.event("DELETED", obj("b"))
    assert gate.policy("b") is None


def test_a_warming_watch_cache_is_not_told_as_an_outage() -> None:
    from asynctask_operator.errors import Unavailable
    from asynctask_operator.queue_watch import WarmingUp

    told: list[str] = []

    class Report:
        def failed(self, exc: Unavailable) -> None:
            told.append(str(exc))

        def answered(self) -> None:
            told.append("answered")

    quiet = WarmingUp(Report())
    quiet.failed(Unavailable("429 TooManyRequests: storage is (re)initializing"))
    quiet.failed(Unavailable("ClientConnectorError: Cannot connect"))
    quiet.answered()
    assert told == ["ClientConnectorError: Cannot connect", "answered"]
