"""Webhooks: a CloudEvent to ``spec.webhook.url`` on every phase change of a task.

The Tracker calls :meth:`WebhookDispatcher.notify` after each status write; it only builds
the event and queues it, so it never blocks the operator. A bounded pool of asyncio workers
delivers events (aiohttp), one at a time per task and in order, with a time limit on every
attempt and exponential backoff with jitter, until one succeeds or the event is given up.
Phase events (``dev.asynctask.task.<phase>``) are all delivered; progress events (opt-in,
``dev.asynctask.task.progress``) are lossy: a newer event of the task replaces one that
waits. Ids are deterministic, so receivers can drop duplicates (at-least-once delivery).
Bodies are signed (:mod:`signing`) with a key read through an injected loader; targets are
checked and pinned (:mod:`ssrf`). Each event's outcome goes to ``on_result(ref, state)`` for
the Tracker to merge into ``status.webhook``: this module never writes to the API itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, NotRequired, TypedDict
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from asynctask_operator import signing
from asynctask_operator.settings import GROUP, PLURAL, VERSION, OperatorSettings
from asynctask_operator.ssrf import (
    DeliveryError,
    ResolutionFailed,
    Resolve,
    TargetPolicy,
    UnsafeTarget,
    post,
    system_resolve,
)
from asynctask_operator.status import phase_of, rfc3339
from asynctask_worker.messages import Phase, TaskRef

log = logging.getLogger("asynctask.operator.webhooks")

EVENT_CONTENT_TYPE = "application/cloudevents+json; charset=utf-8"
EVENT_TYPE_PREFIX = "dev.asynctask.task."
PROGRESS_TYPE = EVENT_TYPE_PREFIX + "progress"
USER_AGENT = "asynctask-operator"
ATTEMPT_HEADER = "X-AsyncTask-Delivery-Attempt"
#: http(s)://authority[/path][?query]: no user info, no fragment, no white space.
URL_PATTERN = r"^https?://[^\s/?#@]+([/?][^\s#]*)?$"
_TERMINAL = frozenset(p.value for p in Phase if p.terminal)

#: ``(namespace, name, key) -> bytes``: the raw value of one key of a Secret.
SecretLoader = Callable[[str, str, str], Awaitable[bytes]]


class SecretKeyRef(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    name: Annotated[str, Field(min_length=1, max_length=253,
                               pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")]
    key: Annotated[str, Field(min_length=1, max_length=253, pattern=r"^[-._a-zA-Z0-9]+$")]


class WebhookSpec(BaseModel):
    """``spec.webhook`` of an AsyncTask."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=URL_PATTERN)]
    secret_ref: SecretKeyRef | None = Field(None, alias="secretRef")
    include_progress: bool = Field(False, alias="includeProgress")

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if not parts.hostname:
            raise ValueError("the URL has no host")
        _ = parts.port  # raises ValueError for a port that is not a number in range
        return url


def parse_webhook(spec: Mapping[str, Any]) -> WebhookSpec | None:
    """The webhook of an AsyncTask's spec, if any (raises pydantic's ValidationError)."""
    raw = spec.get("webhook")
    return None if raw is None else WebhookSpec.model_validate(raw)


# events ----------------------------------------------------------------------------------

def event_attempt(status: Mapping[str, Any]) -> int:
    """The attempt a status is about: the next one while a retry waits, else the latest."""
    if phase_of(dict(status)) is Phase.PENDING and status.get("nextAttempt"):
        return int(status["nextAttempt"])
    return max(int(status.get("attempts") or 0), 1)


def event_id(uid: str, attempt: int, phase: Phase, progress: int | None = None,
             message: str | None = None) -> str:
    """Deterministic: the same change of the same task always gets the same id."""
    if progress is None:
        return f"{uid}.{attempt}.{phase.value.lower()}"
    digest = hashlib.sha256((message or "").encode()).hexdigest()[:8]
    return f"{uid}.{attempt}.progress.{progress}.{digest}"


def build_event(ref: TaskRef, status: Mapping[str, Any], *, progress_event: bool = False,
                now: datetime | None = None) -> dict[str, Any]:
    """A CloudEvents 1.0 event (structured mode) describing ``status``."""
    phase = phase_of(dict(status))
    if phase is None:
        raise ValueError("the status has no phase")
    attempt = event_attempt(status)
    progress = int(status.get("progress") or 0)
    message = status.get("message")
    return {
        "specversion": "1.0",
        "id": event_id(ref.uid, attempt, phase, progress if progress_event else None,
                       message if progress_event else None),
        "source": f"/apis/{GROUP}/{VERSION}/namespaces/{ref.namespace}/{PLURAL}/{ref.name}",
        "type": PROGRESS_TYPE if progress_event else EVENT_TYPE_PREFIX + phase.value.lower(),
        "subject": ref.name,
        "time": status.get("lastUpdateTime") or rfc3339(now or datetime.now(UTC)),
        "datacontenttype": "application/json",
        "data": {
            "name": ref.name, "namespace": ref.namespace, "uid": ref.uid, "phase": phase.value,
            "attempt": attempt, "attempts": int(status.get("attempts") or 0),
            "progress": progress, "message": message, "result": status.get("result"),
            "error": status.get("error"), "lastError": status.get("lastError"),
            "nextAttemptTime": status.get("nextAttemptTime"),
        },
    }


def encode_event(event: Mapping[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def backoff_delay(retry: int, base: float, cap: float,
                  rand: Callable[[], float] = random.random) -> float:
    """The wait before retry number ``retry`` (1 after the first failed attempt): the nominal
    ``min(cap, base * 2**(retry-1))``, jittered to between 50% and 100% of it."""
    nominal = min(cap, base * 2.0 ** min(retry - 1, 64))
    return nominal * (0.5 + 0.5 * rand())


# delivery --------------------------------------------------------------------------------

class DeliveryState(TypedDict):
    """What ``status.webhook`` should say after an event was delivered or given up."""

    delivered: bool  # this event (lastEventId) reached the receiver
    attempts: int  # attempts made for this event
    lastAttemptTime: str
    lastEventId: str
    lastDeliveredPhase: NotRequired[str]  # the phase of the latest event delivered
    lastError: NotRequired[str]  # why this event was not delivered


ResultCallback = Callable[[TaskRef, DeliveryState], None]


@dataclass
class _Event:
    id: str
    phase: Phase
    progress: bool
    body: bytes
    webhook: WebhookSpec
    queued: float = field(default_factory=time.monotonic)
    attempts: int = 0


@dataclass
class _Lane:  # one task's events: delivered one at a time, in order
    ref: TaskRef
    events: deque[_Event] = field(default_factory=deque)
    active: bool = False  # in the ready queue, in flight, or waiting out a backoff
    in_flight: bool = False
    timer: asyncio.TimerHandle | None = None
    delivered_phase: str | None = None
    forgotten: bool = False


class WebhookDispatcher:
    def __init__(self, settings: OperatorSettings, load_secret: SecretLoader | None = None,
                 on_result: ResultCallback | None = None, *,
                 resolve: Resolve = system_resolve,
                 rand: Callable[[], float] = random.random) -> None:
        self.settings = settings
        self.policy = TargetPolicy.of(settings.webhook_allowed_cidrs,
                                      settings.webhook_allowed_hosts)
        self._load_secret = load_secret
        self.on_result = on_result
        self._resolve = resolve
        self._rand = rand
        self._lanes: dict[str, _Lane] = {}
        self._states: dict[str, DeliveryState] = {}
        self._secrets: dict[tuple[str, str, str], tuple[bytes, float]] = {}
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._active = 0  # lanes with events
        self.queued = 0  # events waiting or in flight, all tasks together
        self.requests = 0  # delivery attempts made (for logs and tests)
        self.dropped = 0  # events dropped: superseded progress, or the queue was full

    # public API ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery workers (``notify`` does it on first use)."""
        if not self._workers:
            loop = asyncio.get_running_loop()
            self._workers = [loop.create_task(self._work(), name=f"asynctask-webhook-{i}")
                             for i in range(self.settings.webhook_concurrency)]

    async def close(self) -> None:
        """Stop delivering; events still queued are dropped."""
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def drain(self, within: float | None = None) -> None:
        """Wait (at most ``within`` s) until every event was delivered or given up."""
        async with asyncio.timeout(within):
            await self._idle.wait()

    def notify(self, ref: TaskRef, webhook: WebhookSpec | None, status: Mapping[str, Any],
               previous: Mapping[str, Any] | None = None) -> str | None:
        """Queue the event that the change from ``previous`` to ``status`` calls for, if any;
        return its id. Never blocks: call it after each status write, with the status before
        the write as ``previous`` (None: unknown, treated as a phase change)."""
        phase = phase_of(dict(status))
        if webhook is None or phase is None:
            return None
        before = previous or {}
        if phase is not phase_of(dict(before)) or event_attempt(status) != event_attempt(before):
            progress = False
        elif (webhook.include_progress and phase is Phase.PROCESSING
              and (status.get("progress"), status.get("message"))
              != (before.get("progress"), before.get("message"))):
            progress = True
        else:
            return None
        body = build_event(ref, status, progress_event=progress)
        event = _Event(body["id"], phase, progress, encode_event(body), webhook)
        lane = self._lanes.get(ref.uid)
        if lane is None:
            lane = self._lanes[ref.uid] = _Lane(ref)
            seen = status.get("webhook")
            if isinstance(seen, Mapping) and seen.get("lastDeliveredPhase"):
                lane.delivered_phase = str(seen["lastDeliveredPhase"])
        lane.forgotten = False
        self._supersede(lane)
        if self.queued >= self.settings.webhook_max_queued_events:
            self.dropped += 1
            log.warning("webhook event %s dropped: %d events are queued", event.id, self.queued)
            if not progress:
                self._finish(lane, event, f"dropped: {self.queued} webhook events were queued")
            return None
        lane.events.append(event)
        self.queued += 1
        if not lane.active:
            self.start()
            self._activate(lane)
        return event.id

    def state(self, uid: str) -> DeliveryState | None:
        """The latest delivery state of a task (what ``on_result`` was last given)."""
        return self._states.get(uid)

    def forget(self, uid: str) -> None:
        """The task is gone: drop what is kept about it (events queued are still sent)."""
        lane = self._lanes.get(uid)
        if lane is not None and lane.active:
            lane.forgotten = True
            return
        self._lanes.pop(uid, None)
        self._states.pop(uid, None)

    # queueing ----------------------------------------------------------------------------

    def _supersede(self, lane: _Lane) -> None:
        """Drop the task's progress events that wait (the one in flight stays)."""
        head = lane.events[0] if lane.events else None
        kept: deque[_Event] = deque()
        for event in lane.events:
            if event.progress and not (event is head and lane.in_flight):
                self.queued -= 1
                self.dropped += 1
            else:
                kept.append(event)
        lane.events = kept
        if head is not None and (not kept or kept[0] is not head) and lane.timer is not None:
            lane.timer.cancel()  # it was waiting out a backoff: no need to wait any more
            lane.timer = None
            self._ready.put_nowait(lane.ref.uid)

    def _activate(self, lane: _Lane) -> None:
        lane.active, self._active = True, self._active + 1
        self._idle.clear()
        self._ready.put_nowait(lane.ref.uid)

    def _deactivate(self, lane: _Lane) -> None:
        lane.active, self._active = False, self._active - 1
        if self._active == 0:
            self._idle.set()
        if lane.forgotten:
            self._lanes.pop(lane.ref.uid, None)
            self._states.pop(lane.ref.uid, None)
        elif lane.delivered_phase in _TERMINAL:
            self._lanes.pop(lane.ref.uid, None)  # nothing can follow a terminal phase

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            uid = await self._ready.get()
            lane = self._lanes.get(uid)
            if lane is None or not lane.active:
                continue
            lane.timer = None
            if not lane.events:
                self._deactivate(lane)
                continue
            event = lane.events[0]
            lane.in_flight = True
            try:
                retry_in = await self._attempt(lane, event)
            except Exception as exc:
                log.exception("webhook event %s failed unexpectedly", event.id)
                self._finish(lane, event, f"internal error: {exc}")
                retry_in = None
            finally:
                lane.in_flight = False
            if retry_in is not None:
                lane.timer = loop.call_later(retry_in, self._ready.put_nowait, uid)
                continue
            lane.events.popleft()
            self.queued -= 1
            if lane.events:
                self._ready.put_nowait(uid)
            else:
                self._deactivate(lane)

    # one attempt -------------------------------------------------------------------------

    async def _attempt(self, lane: _Lane, event: _Event) -> float | None:
        """Try once; return the delay before the next try, or None if the event is done."""
        s = self.settings
        event.attempts += 1
        self.requests += 1
        retry_after: float | None = None
        error: str | None = None
        final = True
        try:
            async with asyncio.timeout(s.webhook_timeout_seconds):
                await self._send(lane.ref, event)
        except UnsafeTarget as exc:
            error = f"refused: {exc}"
        except DeliveryError as exc:
            error, final, retry_after = str(exc), not exc.retryable, exc.retry_after
        except TimeoutError:
            error, final = f"timed out after {s.webhook_timeout_seconds:g}s", False
        except (aiohttp.ClientError, OSError, ResolutionFailed) as exc:
            error, final = f"{type(exc).__name__}: {exc}", False
        delay = backoff_delay(event.attempts, s.webhook_backoff_base_seconds,
                              s.webhook_backoff_max_seconds, self._rand)
        if retry_after is not None:
            delay = max(delay, min(retry_after, s.webhook_backoff_max_seconds))
        age = time.monotonic() - event.queued
        if not final and event.attempts >= s.webhook_max_attempts:
            final, error = True, f"gave up after {event.attempts} attempts: {error}"
        elif not final and age + delay > s.webhook_max_age_seconds:
            final, error = True, f"gave up after {event.attempts} attempts in {age:.0f}s: {error}"
        if final:
            self._finish(lane, event, error)
            return None
        log.info("webhook event %s: attempt %d failed (%s); retrying in %.1fs", event.id,
                 event.attempts, error, delay)
        return delay

    async def _send(self, ref: TaskRef, event: _Event) -> None:
        headers = {"Content-Type": EVENT_CONTENT_TYPE, "User-Agent": USER_AGENT,
                   ATTEMPT_HEADER: str(event.attempts)}
        secret = event.webhook.secret_ref
        if secret is not None:
            key = await self._secret(ref.namespace, secret)
            headers.update(signing.signature_headers(key, event.body))
        else:
            headers[signing.TIMESTAMP_HEADER] = str(int(time.time()))
        try:
            await post(event.webhook.url, event.body, headers, self.policy,
                       resolve=self._resolve, time_limit=self.settings.webhook_timeout_seconds,
                       require_https=self.settings.webhook_require_https)
        except DeliveryError as exc:
            if exc.status in (401, 403) and secret is not None:  # the key may have changed
                self._secrets.pop((ref.namespace, secret.name, secret.key), None)
            raise

    async def _secret(self, namespace: str, ref: SecretKeyRef) -> bytes:
        where = f"key {ref.key!r} of Secret {namespace}/{ref.name}"
        if self._load_secret is None:
            raise DeliveryError(f"cannot sign: no secret loader for {where}", retryable=False)
        cache_key = (namespace, ref.name, ref.key)
        now = time.monotonic()
        cached = self._secrets.get(cache_key)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            key = await self._load_secret(namespace, ref.name, ref.key)
        except Exception as exc:
            raise DeliveryError(f"cannot read {where}: {exc}") from exc
        if not key:
            raise DeliveryError(f"{where} is empty")
        if len(self._secrets) >= 1024:  # keep the cache small: drop what expired
            self._secrets = {k: v for k, v in self._secrets.items() if v[1] > now}
        self._secrets[cache_key] = (key, now + self.settings.webhook_secret_cache_seconds)
        return key

    def _finish(self, lane: _Lane, event: _Event, error: str | None) -> None:
        if error is None:
            lane.delivered_phase = event.phase.value
            log.info("webhook event %s delivered (attempt %d)", event.id, event.attempts)
        else:
            log.warning("webhook event %s not delivered: %s", event.id, error)
        state = DeliveryState(delivered=error is None, attempts=event.attempts,
                              lastAttemptTime=rfc3339(datetime.now(UTC)),
                              lastEventId=event.id)
        if lane.delivered_phase is not None:
            state["lastDeliveredPhase"] = lane.delivered_phase
        if error is not None:
            state["lastError"] = error[:1024]
        self._states[lane.ref.uid] = state
        if self.on_result is not None:
            try:
                self.on_result(lane.ref, state.copy())
            except Exception:
                log.exception("webhook on_result callback failed for %s", event.id)
