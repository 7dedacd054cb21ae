"""What the operator does to a task when the watch or the clock says so.

:class:`Tracker` reacts to watch events (a new task is queued, ``spec.cancel`` is honoured,
a deleted task's work is stopped; no finalizer needed), to deadlines as they fall due
(:mod:`deadlines` decides them, :mod:`timers` fires them: queue and run timeouts, retries
after backoff, TTLs). Worker status messages are the business of :mod:`inbox`, webhook
outcomes of :mod:`outcomes`; every status write goes through :class:`writer.StatusWriter`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asynctask_operator import status as st
from asynctask_operator.background import Background
from asynctask_operator.deadlines import Kind, wanted
from asynctask_operator.errors import Gone
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.payloads.objects import PayloadObjects
from asynctask_operator.ports import ArchiveGate, TaskApi, TaskBroker, stop_work
from asynctask_operator.queues.gate import QueueGate
from asynctask_operator.settings import LifecycleConfig
from asynctask_operator.spec import AsyncTaskSpec
from asynctask_operator.tasks import TaskState, TaskTable
from asynctask_operator.timers import Deadlines
from asynctask_operator.writer import StatusWriter
from asynctask_worker.messages import (
    MAX_REQUEST_DEPTH,
    MAX_START_REPORT_SECONDS,
    Phase,
    TaskMessage,
    TaskRef,
    task_message_id,
    utcnow,
)

log = logging.getLogger("asynctask.operator")

#: How many deferred submissions run at once (each a publish and a status write).
SUBMITTERS = 32

#: How long a cancel of a published task that shows no start waits for a worker's word
#: before it records the task cancelled before a worker started it: a worker may hold an
#: attempt's start report for up to MAX_START_REPORT_SECONDS (docs/protocol.md), and the
#: report then takes a moment to come. The cancel itself goes to the workers at once.
CANCEL_START_WAIT_SECONDS = MAX_START_REPORT_SECONDS + 0.5


class Tracker:
    def __init__(
        self,
        config: LifecycleConfig,
        table: TaskTable,
        writer: StatusWriter,
        api: TaskApi,
        broker: TaskBroker,
        timers: Deadlines,
        metrics: OperatorMetrics,
        gate: QueueGate | None = None,
        archive: ArchiveGate | None = None,
        payloads: PayloadObjects | None = None,
    ) -> None:
        self.config = config
        self.gate = gate  # AsyncQueue admission (None: every task is published at once)
        self.archive = archive
        # Large payloads: grants on publish, refused references (storage off: no store)
        self.payloads = payloads or PayloadObjects.off(metrics)
        self.table = table
        self.writer = writer
        self.api = api
        self.broker = broker
        self.timers = timers
        self.metrics = metrics
        #: Applies what a task's status lane holds (``inbox.StatusInbox.flush``; set by
        #: the composition root): a cancel reads a start waiting there before it decides.
        self.flush_status: Callable[[str], Awaitable[None]] | None = None
        self.cancel_start_wait = CANCEL_START_WAIT_SECONDS
        self._cancels = Background()
        self._submissions: asyncio.Queue[str] = asyncio.Queue()
        self._deferred: set[str] = set()  # uids waiting in _submissions

    # watch events (task_watch) ---------------------------------------------------------

    async def observe(self, body: dict[str, Any], *, defer: bool = False) -> None:
        """An object as the watch saw it: queue it if new, act on spec.cancel, set deadlines.

        With ``defer`` (the watch's way), a new task is handed to :meth:`submitting` rather
        than submitted before this returns: a storm of new objects then waits as uids in
        one queue, not as the watch's per-object lanes each holding its whole object until
        this returns."""
        task = self.table.remember(body)
        async with task.lock:
            if self.gate is not None:
                self.gate.track(task)
            phase = st.phase_of(task.status)
            if phase is None or not phase.terminal:
                if task.spec is not None and task.spec.cancel:
                    await self._cancel(task, "CancelRequested", "cancelled by spec.cancel")
                elif phase is None and not task.submitted:
                    if defer:
                        self._defer(task.uid)
                    else:
                        await self._submit(task)
            self.timers.apply(task.uid, wanted(task.status, task.spec))

    def _defer(self, uid: str) -> None:
        if uid not in self._deferred:
            self._deferred.add(uid)
            self._submissions.put_nowait(uid)

    async def submitting(self) -> None:
        """Submit the tasks :meth:`observe` deferred, one at a time, until cancelled (the
        operator runs :data:`SUBMITTERS` of these). A task cancelled, deleted or submitted
        meanwhile is skipped; one whose message could not be published is tried again."""
        while True:
            uid = await self._submissions.get()
            self._deferred.discard(uid)
            task = self.table.get(uid)
            if task is None:
                continue
            try:
                async with task.lock:
                    if self._still_new(task):
                        await self._submit(task)
            except Exception:
                log.exception("submitting %s/%s failed", task.namespace, task.name)
                if not task.submitted:  # nothing published: safe to do again
                    self._retry_later(uid)

    async def releasing(self) -> None:
        """Publish the tasks the queue gate admitted from its held set (and offer again
        those it parked at start-up), until cancelled. A task cancelled, deleted or
        finished meanwhile gives its slot back."""
        assert self.gate is not None
        gate = self.gate
        while True:
            uid = await gate.released.get()
            task = self.table.get(uid)
            if task is None:
                gate.finished(uid)
                continue
            try:
                async with task.lock:
                    phase, spec = st.phase_of(task.status), task.spec
                    live = phase is None or phase is Phase.PENDING
                    if not self.table.holds(task) or not live or spec is None or spec.cancel:
                        gate.finished(uid)
                    elif not task.submitted:
                        await (self._submit(task) if phase is None else self._queue(task, spec))
            except Exception:
                log.exception("publishing admitted %s/%s failed", task.namespace, task.name)
                if not task.submitted:
                    asyncio.get_running_loop().call_later(
                        self.config.submit_retry_seconds, gate.released.put_nowait, uid
                    )

    def _still_new(self, task: TaskState) -> bool:
        return (
            self.table.holds(task)
            and st.phase_of(task.status) is None
            and not task.submitted
            and not (task.spec is not None and task.spec.cancel)
        )

    def _retry_later(self, uid: str) -> None:
        loop = asyncio.get_running_loop()
        loop.call_later(self.config.submit_retry_seconds, self._defer, uid)

    async def deleted(self, body: dict[str, Any]) -> None:
        """The object is gone: stop its work if it was not finished, delete its stored
        payloads (no finalizer needed)."""
        meta = body["metadata"]
        task = self.table.get(meta["uid"])
        known = task.spec.request_ref if task is not None and task.spec is not None else None
        self.payloads.deleted(meta["namespace"], meta["uid"], body.get("spec"), known)
        status = task.status if task is not None else dict(body.get("status") or {})
        phase = st.phase_of(status)
        if phase is None or not phase.terminal:
            ref = TaskRef(uid=meta["uid"], namespace=meta["namespace"], name=meta["name"])
            await stop_work(self.broker, ref, "cancel", "Deleted")
        self.writer.forget(meta["uid"])

    async def _submit(self, task: TaskState) -> None:
        spec = task.spec
        if spec is None:
            await self.writer.end(task, Phase.ERROR, "InvalidSpec", task.spec_error)
            return
        if spec.request_ref is not None and (task.request is not None or task.request_depth):
            await self.writer.end(
                task, Phase.ERROR, "InvalidSpec", "give spec.request or spec.requestRef, not both"
            )
            return
        refused = self.payloads.refusal(task.namespace, spec.request_ref)
        if refused is not None:  # never presigned: another namespace's, or storage off
            await self.writer.end(task, Phase.ERROR, *refused)
            return
        depth = task.request_depth
        if depth > MAX_REQUEST_DEPTH:
            # Checked first: the wire's JSON parser would fail on it.
            await self.writer.end(
                task,
                Phase.ERROR,
                "RequestTooDeep",
                f"spec.request nests {depth} levels deep; the limit is "
                f"{MAX_REQUEST_DEPTH}. Flatten it, or pass it by reference "
                "(e.g. a URL).",
            )
            return
        size = len(task.request or "null")
        limit = self.config.max_request_bytes
        if size > limit:
            await self.writer.end(
                task,
                Phase.ERROR,
                "RequestTooLarge",
                f"spec.request is {size} bytes as JSON; the limit is {limit}. "
                + self.payloads.too_large_hint(),
            )
            return
        due = spec.not_before_epoch()
        if due is not None and due > time.time() and st.phase_of(task.status) is None:
            # Held until spec.notBefore: this is the task's Pending write (reason
            # Scheduled); the NOT_BEFORE deadline it calls for queues it when due.
            self.metrics.held.inc()
            await self.writer.write(
                task,
                st.scheduled(
                    task.status, st.parse_time(str(spec.not_before)), utcnow(), task.generation
                ),
            )
            return
        await self._queue(task, spec)

    async def _queue(self, task: TaskState, spec: AsyncTaskSpec) -> None:
        """Publish the first attempt, then record it (Pending, Waiting for a worker); under
        an AsyncQueue, only once admitted: a task held at its first offer gets one Pending
        write with the reason (a task held for spec.notBefore has had it already)."""
        verdict = None if self.gate is None else self.gate.offer(task, spec)
        if verdict is not None and not verdict.admitted:
            if verdict.write and verdict.reason is not None:
                await self.writer.write(
                    task,
                    st.queue_held(
                        task.status, verdict.reason, verdict.message, utcnow(), task.generation
                    ),
                )
            return
        fold = self._folds(task, spec, verdict is None)
        await self.publish(task, spec, attempt=1)
        task.submitted = True
        record = st.pending(task.status, task_message_id(task.uid, 1), utcnow(), task.generation)
        if fold:
            self.writer.hold_record(task, record, self.config.publish_fold_seconds)
        else:
            await self.writer.write(task, record)

    def _folds(self, task: TaskState, spec: AsyncTaskSpec, ungated: bool) -> bool:
        """May the record of this first publish wait for the task's end (one write)?

        Only for a new task (no phase yet: a task held for spec.notBefore has its Pending
        already), without a webhook (each phase is an event to its receiver) and on a queue
        without an AsyncQueue: a gated queue counts in flight, after a restart, the tasks
        whose publish is recorded, and a task published but not recorded would let the
        gate admit past its cap."""
        return (
            self.config.publish_fold_seconds > 0
            and ungated
            and spec.webhook is None
            and st.phase_of(task.status) is None
        )

    async def publish(self, task: TaskState, spec: AsyncTaskSpec, attempt: int) -> None:
        # Publish first, then record: a crash in between re-publishes the same message id
        # on restart (at-least-once); the reverse order could lose the task.
        await self.broker.publish_task(
            TaskMessage(
                task=task.ref,
                queue=spec.queue,
                request=task.request_value(),
                request_ref=spec.request_ref,
                payload=await self.payloads.grant(task.namespace, task.uid, spec.request_ref),
                attempt=attempt,
                timeout_seconds=spec.timeout_seconds,
            )
        )
        self.metrics.published.labels(spec.queue).inc()
        log.info(
            "queued %s/%s on %s (attempt %d)",
            task.namespace,
            task.name,
            spec.queue,
            attempt,
        )

    async def _cancel(self, task: TaskState, reason: str, message: str) -> None:
        phase = st.phase_of(task.status)
        if not task.cancel_sent and (task.submitted or phase is not None):
            await stop_work(self.broker, task.ref, "cancel", reason)
        task.cancel_sent = True
        if self.flush_status is not None and (phase is None or phase is Phase.PENDING):
            published = task.submitted or bool(task.status.get("messageId"))
            if published or task.recorded is not None:
                # A worker may run it already: its start may wait in the status lane (the
                # fold window), or at the worker (its start window). Decide once that
                # would have come and the lane's messages are applied (outside the lock).
                wait = self.cancel_start_wait if published else 0.0
                self._cancels.spawn(self._cancel_held(task, reason, message, wait))
                return
        await self._cancel_now(task, reason, message)

    async def stop(self) -> None:
        """Cancel and await the cancels still waiting for a status lane (the operator's
        stop): none outlives the operator, and the next one, seeing ``spec.cancel`` again
        when it lists the task, cancels it then."""
        await self._cancels.stop()

    async def _cancel_held(
        self, task: TaskState, reason: str, message: str, wait: float = 0.0
    ) -> None:
        if wait > 0:
            await asyncio.sleep(wait)
        if self.flush_status is not None:
            await self.flush_status(task.uid)
        async with task.lock:
            phase = st.phase_of(task.status)
            if self.table.holds(task) and not (phase is not None and phase.terminal):
                await self._cancel_now(task, reason, message)

    async def _cancel_now(self, task: TaskState, reason: str, message: str) -> None:
        """End a task not started as Cancelled; a started one gets its worker's word, or
        the confirmation timer's."""
        phase = st.phase_of(task.status)
        if phase is None or phase is Phase.PENDING:
            await self.writer.end(
                task, Phase.CANCELLED, reason, f"{message} before a worker started it"
            )
        elif self.timers.due(task.uid, Kind.CANCEL_CONFIRM) is None:
            self.timers.set(
                task.uid, Kind.CANCEL_CONFIRM, time.time() + self.config.cancel_confirm_seconds
            )

    # deadlines -----------------------------------------------------------------------

    async def fire(self, uid: str, kind: Kind) -> None:
        """A deadline fell due (called by :meth:`timers.Deadlines.run`)."""
        task = self.table.get(uid)
        if task is None:
            return
        async with task.lock:
            phase, spec = st.phase_of(task.status), task.spec
            if spec is None or phase is None:
                return
            if kind is Kind.TTL and phase.terminal:
                await self._expire(task)
            elif (
                kind is Kind.QUEUE_TIMEOUT
                and phase is Phase.PENDING
                and not task.status.get("nextAttempt")
            ):
                await stop_work(self.broker, task.ref, "cancel", "QueueTimeout")
                await self.writer.end(
                    task,
                    Phase.TIMED_OUT,
                    "QueueTimeout",
                    "no worker started the task within "
                    f"spec.queueTimeoutSeconds ({spec.queue_timeout_seconds}s)"
                    "; it will not run",
                )
            elif kind is Kind.RUN_TIMEOUT and phase is Phase.PROCESSING:
                await stop_work(self.broker, task.ref, "timeout", "TimedOut")
                await self.writer.end(
                    task,
                    Phase.TIMED_OUT,
                    "DeadlineExceeded",
                    f"the task ran longer than spec.timeoutSeconds "
                    f"({spec.timeout_seconds}s); the worker was told to stop",
                )
            elif kind is Kind.RETRY and phase is Phase.PENDING and task.status.get("nextAttempt"):
                await self.publish(task, spec, int(task.status["nextAttempt"]))
            elif kind is Kind.NOT_BEFORE and st.held(task.status) and not spec.cancel:
                await self._release(task, spec)
            elif kind is Kind.CANCEL_CONFIRM and phase is Phase.PROCESSING:
                await self.writer.end(
                    task,
                    Phase.CANCELLED,
                    "CancelRequested",
                    "cancelled; the worker did not confirm it stopped within "
                    f"{self.config.cancel_confirm_seconds:.0f}s",
                )

    async def _release(self, task: TaskState, spec: AsyncTaskSpec) -> None:
        """A held task's due time came: queue it, never before ``spec.notBefore``."""
        due = spec.not_before_epoch() or 0.0
        now = time.time()
        if now < due:  # a clock that woke early: look again at the due time
            self.timers.set(task.uid, Kind.NOT_BEFORE, due)
            return
        self.metrics.released.inc()
        await self._queue(task, spec)

    async def _expire(self, task: TaskState) -> None:
        wait = self.archive.hold_deletion(task.uid) if self.archive is not None else None
        if wait is not None:  # with the history archive: wait (bounded) for the task's row
            self.timers.set(task.uid, Kind.TTL, time.time() + wait)
            return
        try:
            await self.api.delete(task.namespace, task.name, task.uid)
            log.info("deleted %s/%s: ttlSecondsAfterFinished passed", task.namespace, task.name)
        except Gone:
            pass
