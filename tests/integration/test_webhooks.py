"""Webhook deliveries to a real HTTP receiver on 127.0.0.1 (loopback, so it must be allowed)."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from asynctask_operator.observers import WebhookOutcome
from asynctask_operator.settings import WebhookConfig
from asynctask_operator.spec import WebhookSpec
from asynctask_operator.webhooks import WebhookDispatcher
from asynctask_operator.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from asynctask_worker.messages import TaskRef
from tests.webhook_hits import Hit

pytestmark = pytest.mark.integration

KEY = b"a real signing key, as read from a Secret"


@dataclass
class Receiver:
    """Answers each path with the planned statuses in turn ("hang": never), then 200."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    plan: dict[str, list[int | str]] = field(default_factory=dict)
    jitter: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        hit = Hit(request.path, dict(request.headers), await request.read())
        self.hits.append(hit)
        self.arrived.set()
        planned = self.plan.get(request.path) or []
        action = planned.pop(0) if planned else 200
        if self.jitter:
            await asyncio.sleep(random.uniform(0, self.jitter))
        if action == "hang":
            await self.release.wait()
            return web.Response(status=200)
        assert isinstance(action, int)
        if 300 <= action < 400:
            return web.Response(status=action, headers={"Location": "/elsewhere"})
        return web.Response(status=action, text="ok" if action < 300 else "receiver says no")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    app = web.Application()
    app.router.add_post("/{tail:.*}", r.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    r.port = runner.addresses[0][1]
    yield r
    r.release.set()
    await runner.cleanup()


class Results:
    def __init__(self) -> None:
        self.states: list[tuple[str, WebhookOutcome]] = []

    def __call__(self, ref: TaskRef, state: WebhookOutcome) -> None:
        self.states.append((ref.name, state))


def settings(allow_loopback: bool = True, **overrides: Any) -> WebhookConfig:
    values: dict[str, Any] = {
        "allowed_cidrs": ["127.0.0.1/32"] if allow_loopback else [],
        "backoff_base_seconds": 0.05,
        "backoff_max_seconds": 0.2,
        "timeout_seconds": 2.0,
        "max_attempts": 4,
    }
    values.update(overrides)
    return WebhookConfig(**values)


def ref(name: str = "task") -> TaskRef:
    return TaskRef(uid=f"uid-{name}", namespace="team-a", name=name)


def status(phase: str, **extra: Any) -> dict[str, Any]:
    return {"phase": phase, "attempts": 1, "progress": 0, "message": phase, **extra}


async def keys(namespace: str, name: str, key: str) -> bytes:
    assert (namespace, name, key) == ("team-a", "hook-key", "hmac")
    return KEY


async def test_loopback_is_refused_by_default_then_allowed_by_the_allow_list(
    receiver: Receiver,
) -> None:
    results = Results()
    refusing = WebhookDispatcher(settings(allow_loopback=False), on_outcome=results)
    try:
        refusing.notify(ref(), WebhookSpec(url=receiver.url()), status("Processing"))
        await refusing.drain(5)
    finally:
        await refusing.close()
    assert receiver.hits == []  # no request was made
    [(_, refused)] = results.states
    assert not refused["delivered"] and refused["attempts"] == 1
    assert refused["lastError"] == "refused: 127.0.0.1 is a loopback address"

    allowing = WebhookDispatcher(settings(allow_loopback=True), on_outcome=results)
    try:
        allowing.notify(ref(), WebhookSpec(url=receiver.url()), status("Processing"))
        await allowing.drain(5)
    finally:
        await allowing.close()
    assert len(receiver.hits) == 1 and results.states[-1][1]["delivered"]


async def test_delivery_carries_the_event_and_a_verifiable_signature(receiver: Receiver) -> None:
    asked: list[str] = []

    async def loader(namespace: str, name: str, key: str) -> bytes:
        asked.append(name)
        return await keys(namespace, name, key)

    d = WebhookDispatcher(settings(), loader)
    spec = WebhookSpec.model_validate(
        {"url": receiver.url("/in?token=t"), "secretRef": {"name": "hook-key", "key": "hmac"}}
    )
    try:
        d.notify(ref(), spec, status("Processing"), status("Pending"))
        d.notify(
            ref(), spec, status("Succeeded", result={"n": 42}, progress=100), status("Processing")
        )
        await d.drain(5)
    finally:
        await d.close()
    assert asked == ["hook-key"]  # cached for the second event
    first, second = receiver.hits
    assert first.headers["Content-Type"] == "application/cloudevents+json; charset=utf-8"
    assert first.headers["Host"] == f"127.0.0.1:{receiver.port}"
    assert first.headers["X-AsyncTask-Delivery-Attempt"] == "1"
    for hit in (first, second):
        assert verify_signature(
            KEY, hit.headers[TIMESTAMP_HEADER], hit.body, hit.headers[SIGNATURE_HEADER]
        )
        assert not verify_signature(
            b"wrong key", hit.headers[TIMESTAMP_HEADER], hit.body, hit.headers[SIGNATURE_HEADER]
        )
        assert not verify_signature(
            KEY, hit.headers[TIMESTAMP_HEADER], hit.body + b" ", hit.headers[SIGNATURE_HEADER]
        )
    event = second.event
    assert event["specversion"] == "1.0" and event["type"] == "dev.asynctask.task.succeeded"
    assert event["id"] == "uid-task.1.succeeded"
    assert event["source"] == "/apis/asynctask.dev/v1alpha1/namespaces/team-a/asynctasks/task"
    assert event["data"]["result"] == {"n": 42} and event["data"]["phase"] == "Succeeded"
    assert first.event["type"] == "dev.asynctask.task.processing"


async def test_a_name_is_pinned_to_the_checked_address_and_keeps_its_host_header(
    receiver: Receiver,
) -> None:
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    results = Results()
    d = WebhookDispatcher(settings(), on_outcome=results, resolve=resolve)
    try:
        d.notify(
            ref(),
            WebhookSpec(url=receiver.url(host="hooks.example.com")),
            status("Failed", error={"reason": "Bad", "message": "no"}),
        )
        await d.drain(5)
    finally:
        await d.close()
    assert lookups == ["hooks.example.com"]  # resolved once, by the check, then pinned
    [hit] = receiver.hits
    assert hit.headers["Host"] == f"hooks.example.com:{receiver.port}"
    assert hit.event["data"]["error"] == {"reason": "Bad", "message": "no"}
    assert results.states[-1][1]["delivered"]


async def test_retries_with_backoff_after_two_server_errors(receiver: Receiver) -> None:
    receiver.plan["/hook"] = [500, 503]
    results = Results()
    d = WebhookDispatcher(settings(), on_outcome=results, rand=lambda: 1.0)
    try:
        d.notify(ref(), WebhookSpec(url=receiver.url()), status("Succeeded"))
        await d.drain(5)
    finally:
        await d.close()
    assert [h.headers["X-AsyncTask-Delivery-Attempt"] for h in receiver.hits] == ["1", "2", "3"]
    assert len({h.body for h in receiver.hits}) == 1  # the same event, the same id
    gaps = [b.at - a.at for a, b in zip(receiver.hits, receiver.hits[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # 0.05 then 0.1 (jitter pinned to 100%)
    [(_, state)] = results.states
    assert state["delivered"] and state["attempts"] == 3 and "lastError" not in state
    assert state["lastDeliveredPhase"] == "Succeeded"


async def test_a_hanging_receiver_times_out_and_is_given_up(receiver: Receiver) -> None:
    receiver.plan["/slow"] = ["hang", "hang"]
    results = Results()
    d = WebhookDispatcher(settings(timeout_seconds=0.3, max_attempts=2), on_outcome=results)
    started = time.monotonic()
    try:
        d.notify(ref(), WebhookSpec(url=receiver.url("/slow")), status("Succeeded"))
        await d.drain(5)
    finally:
        await d.close()
    assert time.monotonic() - started < 3  # two 0.3 s timeouts and a short backoff: ~0.8 s
    assert len(receiver.hits) == 2
    [(_, state)] = results.states
    assert not state["delivered"] and state["attempts"] == 2
    assert state["lastError"] == "gave up after 2 attempts: timed out after 0.3s"


async def test_notify_returns_at_once_while_receivers_hang(receiver: Receiver) -> None:
    receiver.plan["/slow"] = ["hang"] * 50
    d = WebhookDispatcher(settings(timeout_seconds=5, concurrency=2))
    try:
        spec = WebhookSpec(url=receiver.url("/slow"))
        d.notify(ref("first"), spec, status("Processing"))
        await asyncio.wait_for(receiver.arrived.wait(), 5)  # a delivery hangs now
        started = time.monotonic()
        for n in range(100):
            d.notify(ref(f"t{n}"), spec, status("Processing"))
            d.notify(ref(f"t{n}"), spec, status("Succeeded"), status("Processing"))
        # Blocking on the hanging delivery would take its 5 s timeout; queuing takes ~20 ms.
        assert time.monotonic() - started < 2
        assert d.queued == 201
    finally:
        await d.close()


async def test_phase_events_arrive_in_order_per_task(receiver: Receiver) -> None:
    receiver.jitter = 0.02
    receiver.plan["/a"] = [500]  # task a's first event needs a retry: its others must wait
    results = Results()
    d = WebhookDispatcher(settings(concurrency=4), on_outcome=results)
    phases = [
        ("Pending", {"attempts": 0}),
        ("Processing", {}),
        ("Pending", {"nextAttempt": 2}),
        ("Processing", {"attempts": 2}),
        ("Succeeded", {"attempts": 2}),
    ]
    names = ["a", "b", "c", "d"]
    try:
        previous: dict[str, dict[str, Any] | None] = dict.fromkeys(names)
        for phase, extra in phases:
            for name in names:
                now = status(phase, **extra)
                spec = WebhookSpec(url=receiver.url(f"/{name}"))
                assert d.notify(ref(name), spec, now, previous[name]) is not None
                previous[name] = now
        await d.drain(10)
    finally:
        await d.close()
    for name in names:
        seen = [
            h.event["id"].removeprefix(f"uid-{name}.")
            for h in receiver.hits
            if h.path == f"/{name}"
        ]
        expected = ["1.pending", "1.processing", "2.pending", "2.processing", "2.succeeded"]
        assert seen == (["1.pending", *expected] if name == "a" else expected)
    assert all(state["delivered"] for _, state in results.states)
    assert len(results.states) == 20


async def test_on_outcome_reports_each_event_and_what_was_last_delivered(
    receiver: Receiver,
) -> None:
    receiver.plan["/hook"] = [200, 404]
    results = Results()
    d = WebhookDispatcher(settings(), on_outcome=results)
    spec = WebhookSpec(url=receiver.url("/hook?secret=hidden"))
    try:
        d.notify(ref(), spec, status("Processing"), status("Pending"))
        d.notify(ref(), spec, status("Failed"), status("Processing"))
        await d.drain(5)
    finally:
        await d.close()
    (_, ok), (_, gone) = results.states
    assert ok["delivered"] and ok["attempts"] == 1 and ok["lastDeliveredPhase"] == "Processing"
    assert ok["lastEventId"] == "uid-task.1.processing"
    assert len(ok["lastAttemptTime"]) == 20 and ok["lastAttemptTime"].endswith("Z")
    assert not gone["delivered"] and gone["attempts"] == 1  # a 404 is not retried
    assert gone["lastDeliveredPhase"] == "Processing"  # Failed never arrived
    assert gone["lastError"] == (
        f"HTTP 404 from http://127.0.0.1:{receiver.port}/hook: receiver says no"
    )  # the query (a token?) is left out


async def test_redirects_are_not_followed(receiver: Receiver) -> None:
    receiver.plan["/moved"] = [302]
    results = Results()
    d = WebhookDispatcher(settings(), on_outcome=results)
    try:
        d.notify(ref(), WebhookSpec(url=receiver.url("/moved")), status("Succeeded"))
        await d.drain(5)
    finally:
        await d.close()
    assert [h.path for h in receiver.hits] == ["/moved"]
    [(_, state)] = results.states
    assert not state["delivered"] and "redirects are not followed" in state["lastError"]


async def test_progress_events_only_when_asked_for(receiver: Receiver) -> None:
    d = WebhookDispatcher(settings())
    quiet = WebhookSpec(url=receiver.url("/quiet"))
    chatty = WebhookSpec(url=receiver.url("/chatty"), includeProgress=True)
    try:
        for name, spec in (("quiet", quiet), ("chatty", chatty)):
            d.notify(ref(name), spec, status("Processing", progress=0), status("Pending"))
            await d.drain(5)
            d.notify(
                ref(name), spec, status("Processing", progress=50), status("Processing", progress=0)
            )
            await d.drain(5)
    finally:
        await d.close()
    assert [h.event["type"] for h in receiver.hits if h.path == "/quiet"] == [
        "dev.asynctask.task.processing"
    ]
    chatty_hits = [h.event for h in receiver.hits if h.path == "/chatty"]
    assert [e["type"] for e in chatty_hits] == [
        "dev.asynctask.task.processing",
        "dev.asynctask.task.progress",
    ]
    assert chatty_hits[1]["data"]["progress"] == 50
