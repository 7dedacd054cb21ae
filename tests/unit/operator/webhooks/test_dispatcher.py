"""The webhook dispatcher without a receiver: configuration, backoff, queueing, outcomes."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from pydantic import ValidationError

from asynctask_operator.observers import WebhookOutcome
from asynctask_operator.settings import WebhookConfig
from asynctask_operator.spec import WebhookSpec
from asynctask_operator.webhooks import WebhookDispatcher
from asynctask_operator.webhooks.retry import Failure, backoff_delay, next_try
from asynctask_worker.messages import TaskRef
from tests.unit.operator.fakes import REF, resolver, status


def test_allow_lists_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_ALLOWED_CIDRS", "127.0.0.1, 10.0.0.0/8")
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_ALLOWED_HOSTS", "*.corp.example,receiver")
    config = WebhookConfig()
    assert config.allowed_cidrs == ["127.0.0.1/32", "10.0.0.0/8"]
    assert config.allowed_hosts == ["*.corp.example", "receiver"]
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_ALLOWED_CIDRS", '["::1"]')
    assert WebhookConfig().allowed_cidrs == ["::1/128"]
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_ALLOWED_CIDRS", "not-a-network")
    with pytest.raises(ValidationError):
        WebhookConfig()
    monkeypatch.delenv("ASYNCTASK_WEBHOOK_ALLOWED_CIDRS")
    monkeypatch.delenv("ASYNCTASK_WEBHOOK_ALLOWED_HOSTS")
    assert WebhookConfig().allowed_cidrs == []


# backoff -----------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_full() -> None:
    full = [backoff_delay(n, 1.0, 30.0, lambda: 1.0) for n in range(1, 8)]
    assert full == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    half = [backoff_delay(n, 1.0, 30.0, lambda: 0.0) for n in range(1, 8)]
    assert half == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    for n in range(1, 8):
        assert half[n - 1] <= backoff_delay(n, 1.0, 30.0) <= full[n - 1]
    assert backoff_delay(10_000, 1.0, 60.0, lambda: 1.0) == 60.0  # no overflow


def test_a_failure_is_retried_after_the_backoff_until_a_limit_says_stop() -> None:
    config = WebhookConfig(
        backoff_base_seconds=1, backoff_max_seconds=30, max_attempts=3, max_age_seconds=100
    )
    transient = Failure("HTTP 503", retryable=True)
    assert next_try(transient, 1, 0.0, config, lambda: 1.0) == (1.0, "HTTP 503")
    assert next_try(transient, 3, 0.0, config, lambda: 1.0) == (
        None,
        "gave up after 3 attempts: HTTP 503",
    )
    assert next_try(transient, 2, 99.0, config, lambda: 1.0) == (
        None,
        "gave up after 2 attempts in 99s: HTTP 503",
    )
    assert next_try(Failure("HTTP 404", retryable=False), 1, 0.0, config) == (None, "HTTP 404")
    slow_down = Failure("HTTP 429", retryable=True, retry_after=20.0)
    assert next_try(slow_down, 1, 0.0, config, lambda: 1.0) == (20.0, "HTTP 429")
    too_slow = Failure("HTTP 429", retryable=True, retry_after=900.0)
    assert next_try(too_slow, 1, 0.0, config, lambda: 1.0) == (30.0, "HTTP 429")  # capped


# the dispatcher (no receiver needed) -------------------------------------------------


def settings(**overrides: Any) -> WebhookConfig:
    values: dict[str, Any] = {
        "backoff_base_seconds": 0.01,
        "backoff_max_seconds": 0.02,
        "timeout_seconds": 2.0,
        "max_attempts": 3,
    }
    values.update(overrides)
    return WebhookConfig(**values)


class Results:
    def __init__(self) -> None:
        self.states: list[tuple[str, WebhookOutcome]] = []

    def __call__(self, ref: TaskRef, state: WebhookOutcome) -> None:
        self.states.append((ref.uid, state))


REFUSED = WebhookSpec(url="http://kubernetes/hook")


async def test_notify_queues_phase_changes_and_opted_in_progress_only() -> None:
    results = Results()
    d = WebhookDispatcher(settings(), on_outcome=results)
    try:
        processing = status("Processing", progress=0)
        assert d.notify(REF, None, processing) is None  # no webhook
        assert d.notify(REF, REFUSED, {}) is None  # no phase yet
        assert (
            d.notify(REF, REFUSED, processing, status("Pending", attempts=0))
            == f"{REF.uid}.1.processing"
        )
        assert d.notify(REF, REFUSED, dict(processing, progress=5), processing) is None
        with_progress = WebhookSpec(url="http://kubernetes/", includeProgress=True)
        assert d.notify(REF, with_progress, dict(processing, progress=5), processing) is not None
        assert d.notify(REF, with_progress, processing, processing) is None  # no change
        retried = status("Pending", nextAttempt=2)
        assert (
            d.notify(REF, REFUSED, status("Processing", attempts=2), retried)
            == f"{REF.uid}.2.processing"
        )
        await d.drain(5)
    finally:
        await d.close()
    # The progress event was still waiting when the next phase event came: superseded.
    assert [state["lastEventId"] for _, state in results.states] == [
        f"{REF.uid}.1.processing",
        f"{REF.uid}.2.processing",
    ]
    assert d.dropped == 1


async def test_refused_targets_fail_at_once_without_retry() -> None:
    results = Results()
    d = WebhookDispatcher(settings(), on_outcome=results)
    try:
        d.notify(REF, REFUSED, status("Processing"))
        await d.drain(5)
    finally:
        await d.close()
    [(uid, state)] = results.states
    assert uid == REF.uid and not state["delivered"] and state["attempts"] == 1
    assert "refused" in state["lastError"] and "single-label" in state["lastError"]
    assert state["lastEventId"] == f"{REF.uid}.1.processing"
    assert "lastDeliveredPhase" not in state and d.requests == 1


async def test_transient_failures_are_retried_then_given_up() -> None:
    calls: list[str] = []
    results = Results()
    d = WebhookDispatcher(settings(), on_outcome=results, resolve=resolver({}, calls))
    try:
        d.notify(
            REF,
            WebhookSpec(url="https://down.example.com/h"),
            status("Succeeded"),
            status("Processing"),
        )
        await d.drain(5)
    finally:
        await d.close()
    [(_, state)] = results.states
    assert calls == ["down.example.com"] * 3
    assert not state["delivered"] and state["attempts"] == 3
    assert state["lastError"].startswith("gave up after 3 attempts: ResolutionFailed")


async def test_events_older_than_the_max_age_are_given_up() -> None:
    results = Results()
    # The first retries wait 5-10 ms, doubling: at most ~30 attempts fit in 0.3 s, so the
    # age gives up first, and saying so ("in Ns") tells it from the attempt limit.
    d = WebhookDispatcher(
        settings(max_attempts=100, max_age_seconds=0.3), on_outcome=results, resolve=resolver({})
    )
    try:
        d.notify(REF, WebhookSpec(url="https://down.example.com/h"), status("Failed"))
        await d.drain(5)
    finally:
        await d.close()
    [(_, state)] = results.states
    assert 1 < state["attempts"] < 100, state
    assert re.match(r"gave up after \d+ attempts in \d+s: ", state["lastError"]), state


async def test_secret_problems() -> None:
    results = Results()
    signed = WebhookSpec.model_validate(
        {"url": "https://hooks.example.com/", "secretRef": {"name": "hook", "key": "k"}}
    )
    no_loader = WebhookDispatcher(settings(), on_outcome=results)
    try:
        no_loader.notify(REF, signed, status("Failed"))
        await no_loader.drain(5)
    finally:
        await no_loader.close()
    assert results.states[-1][1]["attempts"] == 1
    assert "no secret loader" in results.states[-1][1]["lastError"]

    asked: list[tuple[str, str, str]] = []

    async def missing(namespace: str, name: str, key: str) -> bytes:
        asked.append((namespace, name, key))
        raise LookupError('secrets "hook" not found')

    d = WebhookDispatcher(settings(), missing, results)
    try:
        d.notify(REF, signed, status("Failed"))
        await d.drain(5)
    finally:
        await d.close()
    assert asked == [("team-a", "hook", "k")] * 3  # retried: the Secret may appear later
    assert "not found" in results.states[-1][1]["lastError"]


async def test_newer_events_replace_waiting_progress_but_never_phase_events() -> None:
    gate = asyncio.Event()
    results = Results()

    async def held(host: str, port: int) -> list[str]:
        await gate.wait()
        return ["10.0.0.1"]  # refused: every event ends after one attempt

    d = WebhookDispatcher(settings(), on_outcome=results, resolve=held)
    spec = WebhookSpec(url="https://hooks.example.com/", includeProgress=True)
    try:
        base = status("Processing", progress=0)
        d.notify(REF, spec, base, status("Pending"))  # in flight, held
        await asyncio.sleep(0.01)
        for n in (10, 20, 30):
            d.notify(REF, spec, dict(base, progress=n), dict(base, progress=n - 10))
        assert d.queued == 2  # Processing (in flight) + progress 30
        d.notify(REF, spec, dict(base, phase="Succeeded", progress=100), dict(base, progress=30))
        assert d.queued == 2 and d.dropped == 3
        gate.set()
        await d.drain(5)
    finally:
        await d.close()
    assert [s["lastEventId"].split(".", 2)[2] for _, s in results.states] == [
        "processing",
        "succeeded",
    ]


async def test_a_full_queue_drops_and_reports_phase_events() -> None:
    gate = asyncio.Event()
    results = Results()

    async def held(host: str, port: int) -> list[str]:
        await gate.wait()
        return ["10.0.0.1"]

    d = WebhookDispatcher(settings(max_queued_events=1), on_outcome=results, resolve=held)
    spec = WebhookSpec(url="https://hooks.example.com/")
    try:
        other = TaskRef(uid="other", namespace="team-a", name="b")
        assert d.notify(REF, spec, status("Processing")) is not None
        await asyncio.sleep(0.01)
        assert d.notify(other, spec, status("Processing")) is None
        assert results.states[0][0] == "other" and not results.states[0][1]["delivered"]
        assert "dropped" in results.states[0][1]["lastError"]
        gate.set()
        await d.drain(5)
    finally:
        await d.close()


async def test_notify_and_forget_never_block_and_a_failing_callback_is_contained() -> None:
    def broken(ref: TaskRef, state: WebhookOutcome) -> None:
        raise RuntimeError("bug in the callback")

    d = WebhookDispatcher(settings(), on_outcome=broken)
    try:
        started = time.monotonic()
        for n in range(200):
            ref = TaskRef(uid=f"u{n}", namespace="ns", name=f"t{n}")
            d.notify(ref, REFUSED, status("Processing"))
            d.forget(ref.uid)
        assert time.monotonic() - started < 0.5
        await d.drain(5)
        assert d.requests == 200 and d.queued == 0
        assert "u0" not in d._lanes  # forgotten once its events were done
    finally:
        await d.close()
