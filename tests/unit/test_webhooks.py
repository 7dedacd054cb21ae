"""Webhooks without a receiver: event shape, signatures, target safety, backoff, queueing."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import re
import time
from typing import Any

import pytest
from pydantic import ValidationError

from asynctask_operator.settings import OperatorSettings
from asynctask_operator.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signature_headers,
    verify_signature,
)
from asynctask_operator.ssrf import (
    PinnedResolver,
    ResolutionFailed,
    Target,
    TargetPolicy,
    UnsafeTarget,
    address_kind,
    name_kind,
    resolve_target,
    retry_after_seconds,
)
from asynctask_operator.webhooks import (
    DeliveryState,
    WebhookDispatcher,
    WebhookSpec,
    backoff_delay,
    build_event,
    encode_event,
    event_id,
    parse_webhook,
)
from asynctask_worker.messages import Phase, TaskRef

REF = TaskRef(uid="0f0e-uid", namespace="team-a", name="resize-1")


def status(phase: str, **extra: Any) -> dict[str, Any]:
    return {"phase": phase, "attempts": 1, "progress": 0, "message": "m",
            "lastUpdateTime": "2030-01-02T03:04:05Z", **extra}


# the event ---------------------------------------------------------------------------


def test_event_is_a_structured_cloudevent_with_the_task_in_data() -> None:
    s = status("Succeeded", progress=100, result={"url": "s3://x"}, message="done")
    event = build_event(REF, s)
    assert event["specversion"] == "1.0"
    assert event["id"] == f"{REF.uid}.1.succeeded"
    assert event["source"] == "/apis/asynctask.dev/v1alpha1/namespaces/team-a/asynctasks/resize-1"
    assert event["type"] == "dev.asynctask.task.succeeded"
    assert event["subject"] == "resize-1"
    assert event["time"] == "2030-01-02T03:04:05Z"
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == {
        "name": "resize-1", "namespace": "team-a", "uid": REF.uid, "phase": "Succeeded",
        "attempt": 1, "attempts": 1, "progress": 100, "message": "done",
        "result": {"url": "s3://x"}, "error": None, "lastError": None, "nextAttemptTime": None}
    assert json.loads(encode_event(event)) == event


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_has_its_own_type(phase: Phase) -> None:
    event = build_event(REF, status(phase.value))
    assert event["type"] == f"dev.asynctask.task.{phase.value.lower()}"
    assert event["data"]["phase"] == phase.value


def test_ids_are_deterministic_so_receivers_can_deduplicate() -> None:
    s = status("Failed", error={"reason": "Bad", "message": "no"})
    assert build_event(REF, s)["id"] == build_event(REF, dict(s))["id"]
    assert build_event(REF, s)["id"] != build_event(REF, dict(s, attempts=2))["id"]
    assert build_event(REF, s)["data"]["error"] == {"reason": "Bad", "message": "no"}
    p10 = build_event(REF, status("Processing", progress=10), progress_event=True)
    assert p10["type"] == "dev.asynctask.task.progress"
    assert p10["id"] == build_event(REF, status("Processing", progress=10),
                                    progress_event=True)["id"]
    assert p10["id"] != build_event(REF, status("Processing", progress=20),
                                    progress_event=True)["id"]
    assert p10["id"] != build_event(REF, status("Processing", progress=10, message="other"),
                                    progress_event=True)["id"]
    assert event_id("u", 1, Phase.TIMED_OUT) == "u.1.timedout"


def test_a_waiting_retry_is_about_the_next_attempt() -> None:
    queued = build_event(REF, status("Pending", attempts=0))
    retry = build_event(REF, status("Pending", attempts=1, nextAttempt=2,
                                    nextAttemptTime="2030-01-02T03:05:00Z",
                                    lastError={"reason": "Boom"}))
    assert queued["id"] == f"{REF.uid}.1.pending"
    assert retry["id"] == f"{REF.uid}.2.pending"
    assert retry["data"]["attempt"] == 2 and retry["data"]["attempts"] == 1
    assert retry["data"]["lastError"] == {"reason": "Boom"}
    assert retry["data"]["nextAttemptTime"] == "2030-01-02T03:05:00Z"


def test_a_status_without_phase_has_no_event() -> None:
    with pytest.raises(ValueError, match="no phase"):
        build_event(REF, {})


# spec.webhook ------------------------------------------------------------------------


def test_webhook_spec_reads_the_crd_field_names() -> None:
    spec = parse_webhook({"queue": "q", "webhook": {
        "url": "https://hooks.example.com/t?x=1", "includeProgress": True,
        "secretRef": {"name": "hook-key", "key": "hmac"}}})
    assert spec is not None and spec.include_progress and spec.secret_ref is not None
    assert (spec.secret_ref.name, spec.secret_ref.key) == ("hook-key", "hmac")
    assert parse_webhook({"queue": "q"}) is None
    plain = WebhookSpec.model_validate({"url": "http://[2001:db8::1]:8080/x"})
    assert plain.secret_ref is None and not plain.include_progress


@pytest.mark.parametrize("url", [
    "ftp://hooks.example.com/", "https://user:pw@hooks.example.com/", "https:///path",
    "https://hooks.example.com/#frag", "https://hooks.example.com:99999/",
    "https://hooks example.com/", "hooks.example.com/x", "https://h.example.com/" + "a" * 2048,
])
def test_webhook_spec_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError):
        WebhookSpec.model_validate({"url": url})


def test_webhook_spec_refuses_bad_secret_refs() -> None:
    with pytest.raises(ValidationError):
        WebhookSpec.model_validate({"url": "https://h.example.com/",
                                    "secretRef": {"name": "Not_A_Name", "key": "k"}})
    with pytest.raises(ValidationError):
        WebhookSpec.model_validate({"url": "https://h.example.com/",
                                    "secretRef": {"name": "ok", "key": "a/b"}})


# signatures --------------------------------------------------------------------------


def test_signature_round_trip() -> None:
    body = b'{"id":"x"}'
    headers = signature_headers(b"s3cret", body, now=1_700_000_000)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[SIGNATURE_HEADER].startswith("v1=")
    assert verify_signature(b"s3cret", headers[TIMESTAMP_HEADER], body,
                            headers[SIGNATURE_HEADER], now=1_700_000_010)
    assert verify_signature("s3cret", "1700000000", body, headers[SIGNATURE_HEADER],
                            now=1_700_000_000)


def test_tampering_fails_verification() -> None:
    body = b'{"id":"x","data":{"phase":"Failed"}}'
    ts = "1700000000"
    header = f"v1={sign(b'k', ts, body)}"
    now = 1_700_000_001
    assert verify_signature(b"k", ts, body, header, now=now)
    assert not verify_signature(b"k", ts, body.replace(b"Failed", b"Succeeded"), header, now=now)
    assert not verify_signature(b"other", ts, body, header, now=now)
    assert not verify_signature(b"k", "1700000001", body, header, now=now)  # timestamp changed
    assert not verify_signature(b"k", ts, body, header.replace("v1=", "v0="), now=now)
    assert not verify_signature(b"k", ts, body, "v1=" + "0" * 64, now=now)
    assert not verify_signature(b"k", ts, body, "garbage \u00e9", now=now)
    assert not verify_signature(b"k", "not-a-number", body, header, now=now)


def test_replays_outside_the_tolerance_fail() -> None:
    body, ts = b"{}", "1700000000"
    header = f"v1={sign(b'k', ts, body)}"
    assert verify_signature(b"k", ts, body, header, tolerance=300, now=1_700_000_300)
    assert not verify_signature(b"k", ts, body, header, tolerance=300, now=1_700_000_301)
    assert not verify_signature(b"k", ts, body, header, tolerance=300, now=1_699_999_699)


def test_any_of_several_signatures_verifies_during_key_rotation() -> None:
    body, ts = b"{}", "1700000000"
    header = f"v1={sign(b'old', ts, body)}, v1={sign(b'new', ts, body)}"
    assert verify_signature(b"new", ts, body, header, now=1_700_000_000)
    assert verify_signature(b"old", ts, body, header, now=1_700_000_000)


# target safety -----------------------------------------------------------------------


@pytest.mark.parametrize(("address", "kind"), [
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
    ("169.254.10.1", "link-local"), ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"), ("::", "unspecified"),
    ("224.0.0.251", "multicast"), ("ff02::1", "multicast"),
    ("10.1.2.3", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"),
    ("fd12:3456::1", "private"), ("100.64.0.1", "shared"),
    ("::ffff:127.0.0.1", "loopback"), ("::ffff:169.254.169.254", "cloud metadata"),
    ("64:ff9b::a9fe:a9fe", "cloud metadata"), ("2002:7f00:1::", "loopback"),
    ("8.8.8.8", None), ("2606:4700:4700::1111", None),
])
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize("address", ["240.0.0.1", "198.18.0.1", "192.0.2.1", "2001:db8::1",
                                     "255.255.255.255", "100::1"])
def test_reserved_and_documentation_ranges_are_refused(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) in {"private", "non-global"}


@pytest.mark.parametrize(("host", "refused"), [
    ("localhost", True), ("api.localhost", True), ("kubernetes", True), ("metadata", True),
    ("receiver.team-a.svc", True), ("receiver.team-a.svc.cluster.local", True),
    ("kubernetes.default.svc.cluster.local.", True), ("x.cluster.local", True),
    ("printer.local", True), ("metadata.google.internal", True), ("nas.home.arpa", True),
    ("2130706433", True), ("hooks.example.com", False), ("HOOKS.Example.COM.", False),
])
def test_host_names(host: str, refused: bool) -> None:
    assert (name_kind(host) is not None) is refused


def resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]
    return resolve


async def test_public_targets_are_resolved_once_and_pinned() -> None:
    calls: list[str] = []
    target = await resolve_target("Hooks.Example.com.", 443, TargetPolicy(),
                                  resolver({"hooks.example.com": ["93.184.216.34"]}, calls))
    assert target == Target("hooks.example.com", 443, ("93.184.216.34",))
    assert calls == ["hooks.example.com"]
    pinned = await PinnedResolver(target).resolve("hooks.example.com", 443)
    assert [(r["hostname"], r["host"], r["port"]) for r in pinned] == [
        ("hooks.example.com", "93.184.216.34", 443)]
    with pytest.raises(OSError, match=r"only 'hooks\.example\.com'"):
        await PinnedResolver(target).resolve("elsewhere.example.com", 443)


@pytest.mark.parametrize(("host", "answers", "reason"), [
    ("rebind.example.com", ["169.254.169.254"], "cloud metadata"),
    ("loop.example.com", ["127.0.0.1"], "loopback"),
    ("mixed.example.com", ["93.184.216.34", "10.0.0.7"], "private"),
    ("six.example.com", ["::ffff:127.0.0.1"], "loopback"),
    ("zero.example.com", ["0.0.0.0"], "unspecified"),
    ("multi.example.com", ["239.1.1.1"], "multicast"),
    ("ll6.example.com", ["fe80::1%eth0"], "link-local"),
])
async def test_names_resolving_to_internal_addresses_are_refused(
        host: str, answers: list[str], reason: str) -> None:
    with pytest.raises(UnsafeTarget, match=reason):
        await resolve_target(host, 443, TargetPolicy(), resolver({host: answers}))


@pytest.mark.parametrize("host", ["kubernetes", "receiver.ns.svc.cluster.local",
                                  "receiver.ns.svc", "localhost", "metadata.google.internal"])
async def test_cluster_internal_names_are_refused_before_resolving(host: str) -> None:
    calls: list[str] = []
    with pytest.raises(UnsafeTarget, match="name"):
        await resolve_target(host, 80, TargetPolicy(), resolver({host: ["93.184.216.34"]}, calls))
    assert calls == []


@pytest.mark.parametrize(("literal", "reason"), [
    ("127.0.0.1", "loopback"), ("[::1]", "loopback"), ("169.254.169.254", "metadata"),
    ("10.0.0.1", "private"), ("0.0.0.0", "unspecified")])
async def test_ip_literals_are_checked_without_resolving(literal: str, reason: str) -> None:
    calls: list[str] = []
    with pytest.raises(UnsafeTarget, match=reason):
        await resolve_target(literal, 80, TargetPolicy(), resolver({}, calls))
    assert calls == []


async def test_resolution_failures_are_transient() -> None:
    with pytest.raises(ResolutionFailed, match="cannot resolve"):
        await resolve_target("nx.example.com", 443, TargetPolicy(), resolver({}))
    with pytest.raises(ResolutionFailed, match="no addresses"):
        await resolve_target("empty.example.com", 443, TargetPolicy(),
                             resolver({"empty.example.com": []}))

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return []

    started = time.monotonic()
    with pytest.raises(ResolutionFailed, match="longer than"):
        await resolve_target("slow.example.com", 443, TargetPolicy(), slow, time_limit=0.05)
    assert time.monotonic() - started < 1


async def test_cidr_allow_list_overrides_every_address_rule() -> None:
    policy = TargetPolicy.of(cidrs=["127.0.0.1/32", "169.254.169.254", "10.0.0.0/8"])
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "169.254.169.254", "10.9.8.7"):
        await resolve_target(address, 80, policy)
    with pytest.raises(UnsafeTarget, match="loopback"):
        await resolve_target("127.0.0.2", 80, policy)
    assert (await resolve_target("in.example.com", 80, policy,
                                 resolver({"in.example.com": ["10.1.1.1"]}))).addresses == (
        "10.1.1.1",)


async def test_host_allow_list_lifts_name_and_private_rules_only() -> None:
    policy = TargetPolicy.of(hosts=["receiver.team-a.svc.cluster.local", "*.corp.example"])
    table = {"receiver.team-a.svc.cluster.local": ["10.96.0.12"],
             "hooks.corp.example": ["fd00::5"], "corp.example": ["10.0.0.1"],
             "meta.corp.example": ["169.254.169.254"], "lo.corp.example": ["127.0.0.1"]}
    resolve = resolver(table)
    await resolve_target("receiver.team-a.svc.cluster.local", 80, policy, resolve)
    await resolve_target("hooks.corp.example", 80, policy, resolve)
    with pytest.raises(UnsafeTarget, match="private"):  # the wildcard does not cover the apex
        await resolve_target("corp.example", 80, policy, resolve)
    with pytest.raises(UnsafeTarget, match="metadata"):
        await resolve_target("meta.corp.example", 80, policy, resolve)
    with pytest.raises(UnsafeTarget, match="loopback"):
        await resolve_target("lo.corp.example", 80, policy, resolve)
    both = TargetPolicy.of(cidrs=["127.0.0.0/8"], hosts=["*.corp.example"])
    await resolve_target("lo.corp.example", 80, both, resolve)


def test_allow_lists_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_ALLOWED_CIDRS", "127.0.0.1, 10.0.0.0/8")
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_ALLOWED_HOSTS", "*.corp.example,receiver")
    settings = OperatorSettings()
    assert settings.webhook_allowed_cidrs == ["127.0.0.1/32", "10.0.0.0/8"]
    assert settings.webhook_allowed_hosts == ["*.corp.example", "receiver"]
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_ALLOWED_CIDRS", '["::1"]')
    assert OperatorSettings().webhook_allowed_cidrs == ["::1/128"]
    monkeypatch.setenv("ASYNCTASK_WEBHOOK_ALLOWED_CIDRS", "not-a-network")
    with pytest.raises(ValidationError):
        OperatorSettings()
    monkeypatch.delenv("ASYNCTASK_WEBHOOK_ALLOWED_CIDRS")
    monkeypatch.delenv("ASYNCTASK_WEBHOOK_ALLOWED_HOSTS")
    assert OperatorSettings().webhook_allowed_cidrs == []


# backoff -----------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_full() -> None:
    full = [backoff_delay(n, 1.0, 30.0, lambda: 1.0) for n in range(1, 8)]
    assert full == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    half = [backoff_delay(n, 1.0, 30.0, lambda: 0.0) for n in range(1, 8)]
    assert half == [0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 15.0]
    for n in range(1, 8):
        assert half[n - 1] <= backoff_delay(n, 1.0, 30.0) <= full[n - 1]
    assert backoff_delay(10_000, 1.0, 60.0, lambda: 1.0) == 60.0  # no overflow


def test_retry_after_header() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100))
    assert 90 < (retry_after_seconds(future) or 0) <= 100


# the dispatcher (no receiver needed) -------------------------------------------------


def settings(**overrides: Any) -> OperatorSettings:
    values: dict[str, Any] = {"webhook_backoff_base_seconds": 0.01,
                              "webhook_backoff_max_seconds": 0.02,
                              "webhook_timeout_seconds": 2.0, "webhook_max_attempts": 3}
    values.update(overrides)
    return OperatorSettings(**values)


class Results:
    def __init__(self) -> None:
        self.states: list[tuple[str, DeliveryState]] = []

    def __call__(self, ref: TaskRef, state: DeliveryState) -> None:
        self.states.append((ref.uid, state))


REFUSED = WebhookSpec(url="http://kubernetes/hook")


async def test_notify_queues_phase_changes_and_opted_in_progress_only() -> None:
    results = Results()
    d = WebhookDispatcher(settings(), on_result=results)
    try:
        processing = status("Processing", progress=0)
        assert d.notify(REF, None, processing) is None  # no webhook
        assert d.notify(REF, REFUSED, {}) is None  # no phase yet
        assert d.notify(REF, REFUSED, processing, status("Pending", attempts=0)) \
            == f"{REF.uid}.1.processing"
        assert d.notify(REF, REFUSED, dict(processing, progress=5), processing) is None
        with_progress = WebhookSpec(url="http://kubernetes/", includeProgress=True)
        assert d.notify(REF, with_progress, dict(processing, progress=5), processing) \
            is not None
        assert d.notify(REF, with_progress, processing, processing) is None  # no change
        retried = status("Pending", nextAttempt=2)
        assert d.notify(REF, REFUSED, status("Processing", attempts=2), retried) \
            == f"{REF.uid}.2.processing"
        await d.drain(5)
    finally:
        await d.close()
    # The progress event was still waiting when the next phase event came: superseded.
    assert [state["lastEventId"] for _, state in results.states] == [
        f"{REF.uid}.1.processing", f"{REF.uid}.2.processing"]
    assert d.dropped == 1


async def test_refused_targets_fail_at_once_without_retry() -> None:
    results = Results()
    d = WebhookDispatcher(settings(), on_result=results)
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
    assert d.state(REF.uid) == state


async def test_transient_failures_are_retried_then_given_up() -> None:
    calls: list[str] = []
    results = Results()
    d = WebhookDispatcher(settings(), on_result=results, resolve=resolver({}, calls))
    try:
        d.notify(REF, WebhookSpec(url="https://down.example.com/h"),
                 status("Succeeded"), status("Processing"))
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
    d = WebhookDispatcher(settings(webhook_max_attempts=100, webhook_max_age_seconds=0.3),
                          on_result=results, resolve=resolver({}))
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
    signed = WebhookSpec.model_validate({"url": "https://hooks.example.com/",
                                         "secretRef": {"name": "hook", "key": "k"}})
    no_loader = WebhookDispatcher(settings(), on_result=results)
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
        raise LookupError("secrets \"hook\" not found")

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

    d = WebhookDispatcher(settings(), on_result=results, resolve=held)
    spec = WebhookSpec(url="https://hooks.example.com/", includeProgress=True)
    try:
        base = status("Processing", progress=0)
        d.notify(REF, spec, base, status("Pending"))  # in flight, held
        await asyncio.sleep(0.01)
        for n in (10, 20, 30):
            d.notify(REF, spec, dict(base, progress=n), dict(base, progress=n - 10))
        assert d.queued == 2  # Processing (in flight) + progress 30
        d.notify(REF, spec, dict(base, phase="Succeeded", progress=100),
                 dict(base, progress=30))
        assert d.queued == 2 and d.dropped == 3
        gate.set()
        await d.drain(5)
    finally:
        await d.close()
    assert [s["lastEventId"].split(".", 2)[2] for _, s in results.states] == [
        "processing", "succeeded"]


async def test_a_full_queue_drops_and_reports_phase_events() -> None:
    gate = asyncio.Event()
    results = Results()

    async def held(host: str, port: int) -> list[str]:
        await gate.wait()
        return ["10.0.0.1"]

    d = WebhookDispatcher(settings(webhook_max_queued_events=1), on_result=results,
                          resolve=held)
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
    def broken(ref: TaskRef, state: DeliveryState) -> None:
        raise RuntimeError("bug in the callback")

    d = WebhookDispatcher(settings(), on_result=broken)
    try:
        started = time.monotonic()
        for n in range(200):
            ref = TaskRef(uid=f"u{n}", namespace="ns", name=f"t{n}")
            d.notify(ref, REFUSED, status("Processing"))
            d.forget(ref.uid)
        assert time.monotonic() - started < 0.5
        await d.drain(5)
        assert d.requests == 200 and d.queued == 0
        assert d.state("u0") is None  # forgotten once its events were done
    finally:
        await d.close()
