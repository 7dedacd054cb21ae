"""While the apiserver is away, a status message waits (unacked) and its write is tried
again, and so does a progress flush: one WARNING when the outage starts, one INFO
when it ends, no ERROR. What is not an outage is not retried: the adapter tells which
failures are (:func:`apiserver.apiclient.unavailable`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from kubernetes import client as k8s_client

from asynctask_operator.apiserver.apiclient import ApiClient, ApiError, unavailable
from asynctask_operator.apiserver.kube import Kube
from asynctask_operator.errors import Unavailable
from asynctask_operator.ports import Delivery
from asynctask_worker.messages import Phase, StatusMessage, TaskRef, encode
from tests.unit.operator.test_tracking import NS, Harness, until

OUTAGE_WARNING = (
    "the Kubernetes API is unavailable (ClientConnectorError: Cannot connect to host "
    "apiserver:443); writes wait and are retried, watches resume"
)


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    h = Harness()
    h.logic.outage.retry_max_seconds = 0.01
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


def told(caplog: pytest.LogCaptureFixture) -> tuple[list[str], list[str], list[str]]:
    """What the operator said: its WARNINGs, the ends of outages, and anything worse."""
    said = [(r.levelno, r.getMessage(), r.exc_info) for r in caplog.records]
    return (
        [m for lvl, m, _ in said if lvl == logging.WARNING],
        [m for lvl, m, _ in said if lvl == logging.INFO and "answers again after" in m],
        [m for lvl, m, exc in said if lvl > logging.WARNING or exc],
    )


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
    warnings, ends, worse = told(caplog)
    assert warnings == [OUTAGE_WARNING] and len(ends) == 1 and worse == []
    await harness.inbox.handle(delivery(Phase.SUCCEEDED, 1))
    assert harness.phases() == ["Pending", "Processing", "Succeeded"]


async def test_a_progress_flush_waits_out_an_outage_without_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="asynctask.operator")
    h = Harness(progress_interval=0.1, events="all")
    h.logic.outage.retry_max_seconds = 0.01
    try:
        await h.tracker.observe(h.create())
        await h.send(Phase.PROCESSING, seq=0)
        await h.send(Phase.PROCESSING, seq=1, progress=40)  # held back, then flushed
        h.api.unavailable_next = 4  # the flush meets the outage
        await until(lambda: len(h.api.writes) == 3)
        assert h.api.writes[-1]["progress"] == 40
        assert h.journal.count("write t1 Processing") == 1 + 5  # 4 refused, then written
        await h.settle()
        assert [e["reason"] for e in h.api.events] == ["Pending", "Processing"]
    finally:
        await h.logic.webhooks.close()
    warnings, ends, worse = told(caplog)
    assert warnings == [OUTAGE_WARNING] and len(ends) == 1 and worse == []


async def test_an_outage_is_told_once_however_many_calls_wait(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="asynctask.operator")
    outage = harness.logic.outage
    refusals = {"left": 6}

    async def call() -> str:
        if refusals["left"]:
            refusals["left"] -= 1
            raise Unavailable("503 ServiceUnavailable: etcd is not ready")
        return "written"

    results = await asyncio.gather(*(outage.wait_out(call) for _ in range(3)))
    assert results == ["written"] * 3 and not outage.ongoing
    warnings, ends, worse = told(caplog)
    assert len(warnings) == 1 and "etcd is not ready" in warnings[0]
    assert len(ends) == 1 and worse == []


async def test_a_write_applied_but_unanswered_is_read_not_made_again(
    harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    """A write that timed out (or got a 504) may have been applied: it is read before it is
    repeated, so a task never costs two writes for one change (the budget of 3: under a
    backlog, writes that were applied and then timed out at the client were made again,
    up to 5 mutating calls for a task)."""
    caplog.set_level(logging.INFO, logger="asynctask.operator")
    await harness.tracker.observe(harness.create())
    harness.api.unanswered_next = [True]  # applied; the answer is lost
    processing = delivery(Phase.PROCESSING, 0)
    await harness.inbox.handle(processing)
    assert harness.journal[-2:] == ["write t1 Processing", "get t1"]  # one write, one read
    assert harness.phases() == ["Pending", "Processing"]
    assert harness.broker.acked == [processing]
    metrics = harness.logic.writer._metrics
    found = "asynctask_operator_status_writes_unanswered_total"
    assert metrics.value(found, found="applied") == 1
    harness.api.unanswered_next = [False]  # went out, not applied (the apiserver gave up)
    await harness.inbox.handle(delivery(Phase.SUCCEEDED, 1))
    assert harness.journal[-3:] == ["write t1 Succeeded", "get t1", "write t1 Succeeded"]
    assert harness.phases() == ["Pending", "Processing", "Succeeded"]
    assert metrics.value(found, found="missing") == 1
    warnings, ends, worse = told(caplog)
    assert len(warnings) == 2 and len(ends) == 2 and worse == []


async def test_a_write_unanswered_while_its_task_was_replaced_is_not_made(
    harness: Harness,
) -> None:
    await harness.tracker.observe(harness.create())
    api, write = harness.api, harness.api.replace_status

    async def replaced_meanwhile(*args: Any) -> dict[str, Any]:
        try:
            return await write(*args)
        finally:  # deleted, and made again under the same name, while no answer came
            harness.body()["metadata"]["uid"] = "uid-another"

    api.replace_status = replaced_meanwhile  # type: ignore[method-assign,assignment]
    api.unanswered_next = [False]
    await harness.inbox.handle(delivery(Phase.PROCESSING, 0))
    assert harness.journal[-2:] == ["write t1 Processing", "get t1"]
    assert harness.logic.table.get("uid-t1") is None  # forgotten, as a task that is gone


def test_only_an_unreachable_or_overloaded_apiserver_counts_as_unavailable() -> None:
    assert unavailable(ConnectionRefusedError(111, "refused"))
    assert unavailable(aiohttp.ServerDisconnectedError())
    assert unavailable(TimeoutError())  # no answer in time
    assert unavailable(ApiError(503, {})) and unavailable(ApiError(429, {}))
    assert unavailable(ApiError(500, {"reason": "InternalError"}))
    assert unavailable(ApiError(403, {})) is None  # RBAC: waiting will not help
    assert unavailable(ApiError(409, {})) is None and unavailable(ApiError(422, {})) is None
    assert unavailable(ValueError("bug")) is None
    said = unavailable(ApiError(503, {"reason": "ServiceUnavailable", "message": "not now"}))
    assert str(said) == "503 ServiceUnavailable: not now"


def test_a_failure_after_the_request_went_out_may_have_been_applied() -> None:
    def maybe(exc: BaseException) -> bool:
        said = unavailable(exc)
        assert said is not None
        return said.maybe_applied

    assert maybe(TimeoutError())  # the client gave up waiting: the apiserver logs a 504
    assert maybe(aiohttp.ServerDisconnectedError())
    assert maybe(ApiError(504, {"reason": "Timeout"})) and maybe(ApiError(500, {}))
    # Turned away before it was handled, or never sent: not applied.
    assert not maybe(ApiError(429, {})) and not maybe(ApiError(503, {}))
    assert not maybe(ConnectionRefusedError(111, "refused"))
    key = aiohttp.client_reqrep.ConnectionKey("apiserver", 443, True, True, None, None, None)
    assert not maybe(aiohttp.ClientConnectorError(key, OSError(111, "refused")))


async def test_the_adapter_raises_unavailable_when_nothing_answers() -> None:
    client = ApiClient(k8s_client.Configuration(host="http://127.0.0.1:9"))
    try:
        with pytest.raises(Unavailable, match="ClientConnectorError"):
            await Kube(client).replace_status(NS, "t1", "uid-t1", {"phase": "Pending"})
    finally:
        await client.close()
