"""Where the operator keeps track of tasks and writes their status.

One :class:`Tracker` serialises every status write of a task (a lock per task), knows the
latest status it wrote or saw, and coalesces progress: phase changes are written at once,
progress at most once per ``progress_patch_interval_seconds`` per task. A task that
succeeds costs three writes: Pending (queued), Processing (a worker started it) and
Succeeded, plus at most one per second of progress in between.

It also reacts to what is asked of a task (``spec.cancel``, deletion) and to what the
clock says (:mod:`deadlines`): queue and run timeouts, retries after backoff, TTLs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from asynctask_operator import status as st
from asynctask_operator.broker import Broker, Delivery
from asynctask_operator.deadlines import Deadlines, Kind
from asynctask_operator.events import EventRecorder
from asynctask_operator.kube import Gone, Kube, Rejected
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.settings import OperatorSettings
from asynctask_operator.spec import AsyncTaskSpec
from asynctask_operator.webhooks import DeliveryState, WebhookDispatcher, WebhookSpec, parse_webhook
from asynctask_worker import topology
from asynctask_worker.messages import (
    ControlMessage,
    MalformedMessage,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    task_message_id,
    utcnow,
)

log = logging.getLogger("asynctask.operator")


@dataclass
class _Task:
    ref: TaskRef
    generation: int | None
    status: dict[str, Any]
    spec: AsyncTaskSpec | None = None
    spec_error: str = ""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    submitted: bool = False
    cancel_sent: bool = False
    last_write: float = 0.0
    pending: StatusMessage | None = None  # progress waiting for its turn
    flush: asyncio.TimerHandle | None = None
    seq: dict[int, int] = field(default_factory=dict)  # attempt -> newest seq applied
    stopped: set[int] = field(default_factory=set)  # attempts told to stop (duplicates)
    webhook: WebhookSpec | None = None
    delivery: DeliveryState | None = None  # webhook outcome not yet in the status


class Tracker:
    def __init__(self, settings: OperatorSettings, kube: Kube, broker: Broker,
                 events: EventRecorder | None = None,
                 webhooks: WebhookDispatcher | None = None,
                 metrics: OperatorMetrics | None = None) -> None:
        self.settings = settings
        self.kube = kube
        self.broker = broker
        self.events = events or EventRecorder(kube, settings.events)
        self.webhooks = webhooks
        self.metrics = metrics or OperatorMetrics()
        self.deadlines = Deadlines(self.fire)
        self.tasks: dict[str, _Task] = {}
        self.writes = 0  # status PATCHes sent (for logs and tests)
        self.metrics.watch_sizes(lambda: len(self.tasks), lambda: len(self.deadlines))

    # watch events (from kopf) ----------------------------------------------------------

    async def observe(self, body: dict[str, Any]) -> None:
        """An object as the watch saw it: queue it if new, act on spec.cancel, set deadlines."""
        task = self._remember(body)
        async with task.lock:
            phase = st.phase_of(task.status)
            if phase is not None and phase.terminal:
                self._schedule(task)
                return
            if task.spec is not None and task.spec.cancel:
                await self._cancel(task, "CancelRequested", "cancelled by spec.cancel")
            elif phase is None and not task.submitted:
                await self._submit(task)
            self._schedule(task)

    async def deleted(self, body: dict[str, Any]) -> None:
        """The object is gone: stop its work if it was not finished (no finalizer needed)."""
        meta = body["metadata"]
        task = self.tasks.get(meta["uid"])
        status = task.status if task is not None else dict(body.get("status") or {})
        phase = st.phase_of(status)
        if phase is None or not phase.terminal:
            ref = TaskRef(uid=meta["uid"], namespace=meta["namespace"], name=meta["name"])
            await self._stop_work(ref, "cancel", "Deleted")
        self.forget(meta["uid"])

    def forget(self, uid: str) -> None:
        task = self.tasks.pop(uid, None)
        if task is not None and task.flush is not None:
            task.flush.cancel()
        self.deadlines.clear(uid)
        if self.webhooks is not None:
            self.webhooks.forget(uid)

    def _remember(self, body: dict[str, Any]) -> _Task:
        meta = body["metadata"]
        uid = meta["uid"]
        seen = dict(body.get("status") or {})
        task = self.tasks.get(uid)
        if task is None:
            task = self.tasks[uid] = _Task(
                TaskRef(uid=uid, namespace=meta["namespace"], name=meta["name"]),
                meta.get("generation"), seen)
        elif st.order(seen) > st.order(task.status):
            task.status = seen  # e.g. written by a previous operator instance
        task.generation = meta.get("generation", task.generation)
        try:
            task.spec = AsyncTaskSpec.model_validate(body.get("spec") or {})
        except ValidationError as exc:
            task.spec = None
            task.spec_error = "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                                        for e in exc.errors())
        try:
            task.webhook = parse_webhook(body.get("spec") or {})
        except ValidationError as exc:  # the CRD's schema refuses these; be safe anyway
            task.webhook = None
            log.warning("%s/%s: spec.webhook ignored: %s", task.ref.namespace, task.ref.name,
                        exc.errors()[0]["msg"])
        return task

    async def _submit(self, task: _Task) -> None:
        now = utcnow()
        spec = task.spec
        if spec is None:
            await self._end(task, Phase.ERROR, "InvalidSpec", task.spec_error)
            return
        size = len(json.dumps(spec.request, separators=(",", ":")))
        if size > self.settings.max_request_bytes:
            await self._end(task, Phase.ERROR, "RequestTooLarge",
                            f"spec.request is {size} bytes as JSON; the limit is "
                            f"{self.settings.max_request_bytes}. Pass large inputs by reference "
                            f"(e.g. a URL).")
            return
        await self._publish(task, spec, attempt=1)
        task.submitted = True
        await self._write(task, st.pending(task.status, task_message_id(task.ref.uid, 1), now,
                                           task.generation))

    async def _publish(self, task: _Task, spec: AsyncTaskSpec, attempt: int) -> None:
        # Publish first, then record: a crash in between re-publishes the same message id
        # on restart (at-least-once); the reverse order could lose the task.
        await self.broker.publish_task(TaskMessage(
            task=task.ref, queue=spec.queue, request=spec.request, attempt=attempt,
            timeout_seconds=spec.timeout_seconds))
        self.metrics.published.labels(spec.queue).inc()
        log.info("queued %s/%s on %s (attempt %d)", task.ref.namespace, task.ref.name,
                 spec.queue, attempt)

    async def _cancel(self, task: _Task, reason: str, message: str) -> None:
        phase = st.phase_of(task.status)
        if not task.cancel_sent and (task.submitted or phase is not None):
            await self._stop_work(task.ref, "cancel", reason)
        task.cancel_sent = True
        if phase is None or phase is Phase.PENDING:
            await self._end(task, Phase.CANCELLED, reason,
                            f"{message} before a worker started it")
        elif self.deadlines.due(task.ref.uid, Kind.CANCEL_CONFIRM) is None:
            self.deadlines.set(task.ref.uid, Kind.CANCEL_CONFIRM,
                               time.time() + self.settings.cancel_confirm_seconds)

    async def _stop_work(self, ref: TaskRef, action: str, reason: str) -> None:
        """Tell every worker (and any that starts later) to stop or skip this task."""
        await self.broker.publish_control(ControlMessage(
            action="timeout" if action == "timeout" else "cancel", task=ref, reason=reason))

    # worker status messages and dead letters -----------------------------------------

    async def consume(self, inbox: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await inbox.get()
            try:
                if delivery.queue == topology.DEAD_TASKS_QUEUE:
                    await self.dead_letter(delivery)
                else:
                    await self.ingest(delivery)
            except Exception:
                log.exception("failed to process message %s; it will be redelivered",
                              delivery.message_id)

    async def _lookup(self, ref: TaskRef) -> _Task | None:
        task = self.tasks.get(ref.uid)
        if task is not None:
            return task
        try:
            body = await self.kube.get(ref.namespace, ref.name)
        except Gone:
            return None
        if body["metadata"]["uid"] != ref.uid:
            return None
        return self._remember(body)

    async def ingest(self, delivery: Delivery) -> None:
        try:
            msg = decode(StatusMessage, delivery.body)
        except MalformedMessage as exc:
            log.error("dead-lettering status message %s: %s", delivery.message_id, exc)
            self.metrics.messages.labels("malformed").inc()
            self.broker.reject(delivery)
            return
        task = await self._lookup(msg.task)
        if task is None:
            log.info("status for %s/%s, which no longer exists", msg.task.namespace,
                     msg.task.name)
            self.metrics.messages.labels("orphaned").inc()
            if not msg.phase.terminal:
                await self._stop_work(msg.task, "cancel", "Deleted")
            self.broker.ack(delivery)
            return
        async with task.lock:
            await self._apply(task, msg)
        # Acked after the write: if the write failed (exception), the message is redelivered.
        self.broker.ack(delivery)

    async def _apply(self, task: _Task, msg: StatusMessage) -> None:
        change = st.classify(task.status, msg, task.seq.get(msg.attempt))
        if change is st.Change.IGNORE:
            self.metrics.messages.labels("ignored").inc()
            await self._stop_duplicate(task, msg)
            return
        task.seq[msg.attempt] = msg.seq
        since = time.monotonic() - task.last_write
        interval = self.settings.progress_patch_interval_seconds
        if change is st.Change.PROGRESS and since < interval:
            # Coalesced: the newest progress is written when the interval is over. Progress
            # is lossy by nature, so its message is acked now: a crash loses one tick at most.
            task.pending = msg
            self.metrics.messages.labels("coalesced").inc()
            if task.flush is None:
                task.flush = asyncio.get_running_loop().call_later(
                    interval - since, self._schedule_flush, task)
            return
        self.metrics.messages.labels("applied").inc()
        now = utcnow()
        spec = task.spec
        if spec is not None and spec.retries and st.retries_left(task.status, msg,
                                                                 spec.retries):
            delay = spec.retry_delay(msg.attempt, self.settings.retry_backoff_cap_seconds)
            retry_at = datetime.fromtimestamp(time.time() + delay, UTC)
            await self._write(task, st.retrying(task.status, msg, retry_at, spec.retries, now,
                                                task.generation))
            self.events.record(task.ref, "Retrying", str(task.status.get("message")))
            return
        await self._write(task, st.apply(task.status, msg, now, task.generation))

    async def _stop_duplicate(self, task: _Task, msg: StatusMessage) -> None:
        """A worker runs an attempt that is already over (a duplicate delivery, or a task
        cancelled or timed out meanwhile): tell it to stop, once."""
        phase = st.phase_of(task.status)
        if (msg.phase is Phase.PROCESSING and phase is not None and phase.terminal
                and msg.attempt not in task.stopped):
            task.stopped.add(msg.attempt)
            log.info("%s/%s is %s but attempt %d runs: stopping it", task.ref.namespace,
                     task.ref.name, phase.value, msg.attempt)
            action = "timeout" if phase is Phase.TIMED_OUT else "cancel"
            await self._stop_work(task.ref, action, phase.value)

    async def dead_letter(self, delivery: Delivery) -> None:
        """A task message RabbitMQ dead-lettered: its workers kept dying, or it was refused."""
        try:
            msg = decode(TaskMessage, delivery.body)
        except MalformedMessage as exc:
            log.error("a dead-lettered task message %s is not valid: %s (kept in %s)",
                      delivery.message_id, exc, topology.DEAD_LETTER_QUEUE)
            self.broker.ack(delivery)
            return
        task = await self._lookup(msg.task)
        if task is not None:
            why = delivery.dead_letter_reason
            self.metrics.dead_lettered.labels(why or "unknown").inc()
            async with task.lock:
                if why == "delivery_limit":
                    await self._end(task, Phase.ERROR, "DeliveryLimitExceeded",
                                    f"attempt {msg.attempt}'s message was delivered "
                                    f"{topology.DEFAULT_DELIVERY_LIMIT} times and every worker "
                                    "that took it was lost before finishing (killed, crashed "
                                    "or disconnected); it was dead-lettered to "
                                    f"{topology.DEAD_LETTER_QUEUE}")
                else:
                    await self._end(task, Phase.ERROR, "MessageRejected",
                                    f"a worker refused the task's message ({why}); it was "
                                    f"dead-lettered to {topology.DEAD_LETTER_QUEUE}")
            self.events.record(task.ref, "DeadLettered", f"task message dead-lettered: {why}")
        self.broker.ack(delivery)

    # deadlines -----------------------------------------------------------------------

    def _schedule(self, task: _Task) -> None:
        """Set the deadlines that the task's current status calls for."""
        uid, s, spec = task.ref.uid, task.status, task.spec
        phase = st.phase_of(s)
        if phase is None or spec is None:
            return
        if phase.terminal:
            for kind in (Kind.QUEUE_TIMEOUT, Kind.RUN_TIMEOUT, Kind.RETRY, Kind.CANCEL_CONFIRM):
                self.deadlines.clear(uid, kind)
            if spec.ttl_seconds_after_finished is not None and s.get("completionTime"):
                self.deadlines.set(uid, Kind.TTL, _epoch(s["completionTime"])
                                   + spec.ttl_seconds_after_finished)
            return
        if phase is Phase.PENDING and s.get("nextAttemptTime"):
            self.deadlines.set(uid, Kind.RETRY, _epoch(s["nextAttemptTime"]))
        elif phase is Phase.PENDING and spec.queue_timeout_seconds and s.get("queuedTime"):
            self.deadlines.set(uid, Kind.QUEUE_TIMEOUT,
                               _epoch(s["queuedTime"]) + spec.queue_timeout_seconds)
        if phase is Phase.PROCESSING:
            self.deadlines.clear(uid, Kind.QUEUE_TIMEOUT)
            if spec.timeout_seconds and s.get("startTime"):
                self.deadlines.set(uid, Kind.RUN_TIMEOUT,
                                   _epoch(s["startTime"]) + spec.timeout_seconds)

    async def fire(self, uid: str, kind: Kind) -> None:
        task = self.tasks.get(uid)
        if task is None:
            return
        async with task.lock:
            s, spec = task.status, task.spec
            phase = st.phase_of(s)
            if spec is None or phase is None:
                return
            if kind is Kind.TTL and phase.terminal:
                try:
                    await self.kube.delete(task.ref.namespace, task.ref.name, uid)
                    log.info("deleted %s/%s: ttlSecondsAfterFinished passed",
                             task.ref.namespace, task.ref.name)
                except Gone:
                    pass
            elif kind is Kind.QUEUE_TIMEOUT and phase is Phase.PENDING \
                    and not s.get("nextAttempt"):
                await self._stop_work(task.ref, "cancel", "QueueTimeout")
                await self._end(task, Phase.TIMED_OUT, "QueueTimeout",
                                f"no worker started the task within spec.queueTimeoutSeconds "
                                f"({spec.queue_timeout_seconds}s); it will not run")
            elif kind is Kind.RUN_TIMEOUT and phase is Phase.PROCESSING:
                await self._stop_work(task.ref, "timeout", "TimedOut")
                await self._end(task, Phase.TIMED_OUT, "DeadlineExceeded",
                                f"the task ran longer than spec.timeoutSeconds "
                                f"({spec.timeout_seconds}s); the worker was told to stop")
            elif kind is Kind.RETRY and phase is Phase.PENDING and s.get("nextAttempt"):
                await self._publish(task, spec, int(s["nextAttempt"]))
            elif kind is Kind.CANCEL_CONFIRM and phase is Phase.PROCESSING:
                await self._end(task, Phase.CANCELLED, "CancelRequested",
                                "cancelled; the worker did not confirm it stopped within "
                                f"{self.settings.cancel_confirm_seconds:.0f}s")

    # writing ---------------------------------------------------------------------------

    def _schedule_flush(self, task: _Task) -> None:
        task.flush = None
        asyncio.get_running_loop().create_task(self._flush(task))

    async def _flush(self, task: _Task) -> None:
        async with task.lock:
            msg, task.pending = task.pending, None
            if msg is not None and st.classify(task.status, msg) is not st.Change.IGNORE:
                await self._write(task, st.apply(task.status, msg, utcnow(), task.generation))

    async def _end(self, task: _Task, phase: Phase, reason: str, message: str) -> None:
        await self._write(task, st.end(task.status, phase, reason, message, utcnow(),
                                       task.generation))

    async def _write(self, task: _Task, status: dict[str, Any]) -> None:
        """Write the whole ``status`` in one PATCH; the caller holds the task's lock."""
        if status is task.status:
            return
        previous = task.status
        before = st.phase_of(previous)
        if task.delivery is not None and task.delivery != status.get("webhook"):
            status = {**status, "webhook": dict(task.delivery)}
        try:
            await self.kube.replace_status(task.ref.namespace, task.ref.name, task.ref.uid,
                                           status)
        except Gone:
            self.metrics.writes.labels("gone").inc()
            log.info("%s/%s is gone; forgetting it", task.ref.namespace, task.ref.name)
            self.forget(task.ref.uid)
            return
        except Rejected as exc:
            self.metrics.writes.labels("rejected").inc()
            # Never leave a task stuck behind a status the apiserver refuses (e.g. a field
            # over its limit): record why instead, without the offending content.
            log.error("status of %s/%s refused: %s", task.ref.namespace, task.ref.name, exc)
            fallback = {k: v for k, v in task.status.items() if k not in ("result", "error")}
            status = st.end(fallback, Phase.ERROR, "StatusRejected",
                            f"the apiserver refused the task's status: {str(exc)[:800]}",
                            utcnow(), task.generation)
            await self.kube.replace_status(task.ref.namespace, task.ref.name, task.ref.uid,
                                           status)
        self.writes += 1
        self.metrics.writes.labels("ok").inc()
        self.metrics.phase_written(task.spec.queue if task.spec else "", previous, status)
        task.status = status
        task.last_write = time.monotonic()
        task.delivery = None
        if self.webhooks is not None and task.webhook is not None:
            self.webhooks.notify(task.ref, task.webhook, status, previous)
        phase = st.phase_of(status)
        if phase is not None and phase.terminal:
            task.pending = None  # the terminal write has the final word
            if task.flush is not None:
                task.flush.cancel()
                task.flush = None
        if phase is not None and phase is not before and not status.get("nextAttempt"):
            detail = (status.get("error") or {}).get("message") or status.get("message") or ""
            self.events.record(task.ref, phase.value, str(detail))
        self._schedule(task)


    # webhooks ----------------------------------------------------------------------------

    def webhook_result(self, ref: TaskRef, state: DeliveryState) -> None:
        """An event was delivered or given up (called by the dispatcher, in the loop).

        The outcome rides along with the task's next status write. Once the event of a
        terminal phase is settled there is no next write, so it gets one of its own: a task
        with a webhook costs one status write more than one without.
        """
        task = self.tasks.get(ref.uid)
        if task is None:
            return
        task.delivery = state
        self.metrics.webhooks.labels("delivered" if state["delivered"] else "failed").inc()
        phase = st.phase_of(task.status)
        if phase is not None and phase.terminal and state["lastEventId"].endswith(
                "." + phase.value.lower()):
            asyncio.get_running_loop().create_task(self._record_delivery(task))

    async def _record_delivery(self, task: _Task) -> None:
        async with task.lock:
            if (task.delivery is not None and self.tasks.get(task.ref.uid) is task
                    and task.delivery != task.status.get("webhook")):
                await self._write(task, dict(task.status))


def _epoch(timestamp: str) -> float:
    parsed = datetime.strptime(timestamp, "%Y-%m-%dT%H:%M:%SZ")
    return parsed.replace(tzinfo=UTC).timestamp()
