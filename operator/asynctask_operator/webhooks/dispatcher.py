"""Webhooks: a CloudEvent to ``spec.webhook.url`` on every phase change of a task.

The status writer tells :meth:`WebhookDispatcher.status_written` about each status write; it
only builds the event (:mod:`cloudevents`) and queues it, so it never blocks the operator. A
bounded pool of asyncio workers delivers events (aiohttp), one at a time per task and in
order, with a time limit on every attempt and exponential backoff with jitter, until one
succeeds or the event is given up. Phase events are all delivered; progress events (opt-in)
are lossy: a newer event of the task replaces one that waits. Each attempt is
:mod:`sender`'s (signed, target checked and pinned); when to retry is
:mod:`retry`'s. Each event's :class:`WebhookOutcome` goes to ``on_outcome(ref, outcome)``,
given at construction, for the operator to merge into ``status.webhook``: this module never
writes to the API itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asynctask_operator.limits import MESSAGE_CHARS
from asynctask_operator.observers import WebhookOutcome, Written
from asynctask_operator.settings import WebhookConfig
from asynctask_operator.spec import WebhookSpec
from asynctask_operator.status import parse_phase, rfc3339
from asynctask_operator.webhooks.cloudevents import PROGRESS_TYPE, encode_event, event_for
from asynctask_operator.webhooks.retry import next_try
from asynctask_operator.webhooks.secret_cache import SecretLoader
from asynctask_operator.webhooks.sender import WebhookSender
from asynctask_operator.webhooks.ssrf import (
    Resolve,
    system_resolve,
)
from asynctask_worker.messages import Phase, TaskRef

log = logging.getLogger("asynctask.operator.webhooks")


OutcomeCallback = Callable[[TaskRef, WebhookOutcome], None]


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
    def __init__(
        self,
        config: WebhookConfig,
        load_secret: SecretLoader | None = None,
        on_outcome: OutcomeCallback | None = None,
        *,
        resolve: Resolve = system_resolve,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.config = config
        self.sender = WebhookSender(config, load_secret, resolve)
        self._on_outcome = on_outcome
        self._rand = rand
        self._lanes: dict[str, _Lane] = {}
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
            self._workers = [
                loop.create_task(self._work(), name=f"asynctask-webhook-{i}")
                for i in range(self.config.concurrency)
            ]

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

    def status_written(self, written: Written) -> None:
        """An observer of the status writer: queue the event the write calls for."""
        spec = written.spec
        if spec is not None and spec.webhook is not None:
            self.notify(written.ref, spec.webhook, written.status, written.previous)

    def task_forgotten(self, uid: str) -> None:
        self.forget(uid)

    def notify(
        self,
        ref: TaskRef,
        webhook: WebhookSpec | None,
        status: Mapping[str, Any],
        previous: Mapping[str, Any] | None = None,
    ) -> str | None:
        """Queue the event that the change from ``previous`` to ``status`` calls for, if any;
        return its id. Never blocks: call it after each status write, with the status before
        the write as ``previous`` (None: unknown, treated as a phase change)."""
        if webhook is None:
            return None
        body = event_for(ref, status, previous, include_progress=webhook.include_progress)
        if body is None:
            return None
        progress = body["type"] == PROGRESS_TYPE
        event = _Event(
            body["id"], Phase(body["data"]["phase"]), progress, encode_event(body), webhook
        )
        lane = self._lanes.get(ref.uid)
        if lane is None:
            lane = self._lanes[ref.uid] = _Lane(ref)
            seen = status.get("webhook")
            if isinstance(seen, Mapping) and seen.get("lastDeliveredPhase"):
                lane.delivered_phase = str(seen["lastDeliveredPhase"])
        lane.forgotten = False
        self._supersede(lane)
        if self.queued >= self.config.max_queued_events:
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

    def forget(self, uid: str) -> None:
        """The task is gone: drop what is kept about it (events queued are still sent)."""
        lane = self._lanes.get(uid)
        if lane is not None and lane.active:
            lane.forgotten = True
            return
        self._lanes.pop(uid, None)

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
        elif (phase := parse_phase(lane.delivered_phase)) is not None and phase.terminal:
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
        event.attempts += 1
        self.requests += 1
        failure = await self.sender.attempt(lane.ref, event.webhook, event.body, event.attempts)
        if failure is None:
            self._finish(lane, event, None)
            return None
        delay, error = next_try(
            failure, event.attempts, time.monotonic() - event.queued, self.config, self._rand
        )
        if delay is None:
            self._finish(lane, event, error)
            return None
        log.info(
            "webhook event %s: attempt %d failed (%s); retrying in %.1fs",
            event.id,
            event.attempts,
            error,
            delay,
        )
        return delay

    def _finish(self, lane: _Lane, event: _Event, error: str | None) -> None:
        if error is None:
            lane.delivered_phase = event.phase.value
            log.info("webhook event %s delivered (attempt %d)", event.id, event.attempts)
        else:
            log.warning("webhook event %s not delivered: %s", event.id, error)
        outcome = WebhookOutcome(
            delivered=error is None,
            attempts=event.attempts,
            lastAttemptTime=rfc3339(datetime.now(UTC)),
            lastEventId=event.id,
        )
        if lane.delivered_phase is not None:
            outcome["lastDeliveredPhase"] = lane.delivered_phase
        if error is not None:
            outcome["lastError"] = error[:MESSAGE_CHARS]
        if self._on_outcome is not None:
            try:
                self._on_outcome(lane.ref, outcome)
            except Exception:
                log.exception("webhook on_outcome callback failed for %s", event.id)
