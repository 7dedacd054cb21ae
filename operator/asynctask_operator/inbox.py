"""What the operator does with the messages that come back from RabbitMQ.

Worker status messages (``asynctask.status``) move a task through its phases; delivery
is at-least-once and messages come late, twice or out of order, so :mod:`status` decides
what each one means and duplicates are harmless. Dead-lettered task messages
(``asynctask.dead-letter.tasks``) end their task in Error. A message is acked only once what it
caused is written, so a failed write means a redelivery, never a lost update; while the
apiserver is unavailable, a message waits (unacked) while its write is tried again (the
API the inbox is given waits out an outage: :class:`outage.PatientApi`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

from asynctask_operator import status as st
from asynctask_operator.dead_letters import dead_letter_error, metric_label, wanted_task
from asynctask_operator.lanes import Lanes
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.payloads.objects import PayloadObjects
from asynctask_operator.ports import Delivery, EventSink, TaskBroker, stop_work
from asynctask_operator.tasks import TaskState, TaskTable
from asynctask_operator.writer import StatusWriter
from asynctask_worker import topology
from asynctask_worker.messages import (
    MalformedMessage,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    utcnow,
)

log = logging.getLogger("asynctask.operator")
#: The longest a cancel waits for a task's lane to apply what it holds (see :meth:`flush`).
FLUSH_SECONDS = 5.0


class StatusInbox:
    def __init__(
        self,
        table: TaskTable,
        writer: StatusWriter,
        broker: TaskBroker,
        events: EventSink,
        metrics: OperatorMetrics,
        *,
        retry_backoff_cap_seconds: float,
        fold_window_seconds: float = 0.0,
        payloads: PayloadObjects | None = None,
    ) -> None:
        self.table = table
        self.writer = writer
        self.broker = broker
        self.events = events
        self.metrics = metrics
        self.retry_backoff_cap_seconds = retry_backoff_cap_seconds
        self.fold_window_seconds = fold_window_seconds
        self.payloads = payloads or PayloadObjects.off(metrics)
        self.lanes: Lanes[Delivery] = Lanes(self._handle, linger=self.linger)
        # Status messages :meth:`linger` read, kept for :meth:`ingest_many` (each would
        # else be parsed and validated two or three times), by (connection, tag).
        self._read: dict[tuple[int, int], tuple[Delivery, StatusMessage | MalformedMessage]] = {}

    async def consume(self, inbox: asyncio.Queue[Delivery]) -> None:
        """Hand the broker's deliveries to their task's lane, in order, until cancelled.

        Messages of one task are handled in the order they came; different tasks' are
        handled concurrently (see :mod:`lanes`), so their status writes overlap.
        """
        try:
            while True:
                delivery = await inbox.get()
                self.lanes.submit(lane_key(delivery), delivery)
        finally:
            self.lanes.cancel()

    def linger(self, batch: list[Delivery]) -> float:
        """How long a lane may wait for more before handing over ``batch`` (asked again
        whenever more comes): nothing if it ends with a terminal phase, a dead letter or an
        unreadable message; until the end of its publish's fold window for a task whose
        Pending is not yet written (:meth:`StatusWriter.hold_record`), so that a task
        that ends within it is written once; the start fold window if the batch begins
        with an attempt's start (a task that runs briefly sends its end right after, and
        both are then written as one). A task with a webhook is never held."""
        last = self._status(batch[-1])
        if last is None or last.phase.terminal:
            return 0.0
        task = self.table.get(last.task.uid)
        if task is not None and task.spec is not None and task.spec.webhook is not None:
            return 0.0  # webhooks: an event a phase
        hold = 0.0
        if task is not None and task.recorded is not None:
            hold = task.record_at - time.monotonic()
        if self.fold_window_seconds > 0:
            first = last if len(batch) == 1 else self._status(batch[0])
            if first is not None and first.phase is Phase.PROCESSING and first.seq == 0:
                hold = max(hold, self.fold_window_seconds)
        return max(0.0, hold)

    async def flush(self, uid: str) -> None:
        """Apply what a task's lane holds now (a status message lingering for the fold
        window) and return once it is applied, or after :data:`FLUSH_SECONDS`."""
        await self.lanes.flush(uid, FLUSH_SECONDS)

    def _status(self, delivery: Delivery) -> StatusMessage | None:
        if delivery.queue != topology.STATUS_QUEUE:
            return None
        key = (delivery.connection_epoch, delivery.tag)
        read = self._read.get(key)
        if read is None or read[0] is not delivery:
            read = self._read[key] = (delivery, _decode(delivery))
        return read[1] if isinstance(read[1], StatusMessage) else None

    async def handle(self, delivery: Delivery) -> None:
        """Handle one delivery as its lane would (waiting out an unavailable apiserver)."""
        await self._handle(lane_key(delivery), [delivery])

    async def _handle(self, key: str, batch: list[Delivery]) -> None:
        """One lane's batch: runs of status messages folded, dead letters one by one."""
        run: list[Delivery] = []
        for delivery in [*batch, None]:
            if delivery is None or delivery.queue == topology.DEAD_TASKS_QUEUE:
                await self._guarded(self.ingest_many(run), run)
                run = []
                if delivery is not None:
                    await self._guarded(self.dead_letter(delivery), [delivery])
            else:
                run.append(delivery)

    @staticmethod
    async def _guarded(work: Awaitable[None], deliveries: list[Delivery]) -> None:
        try:
            await work
        except Exception:
            log.exception(
                "failed to process message(s) %s; unacked ones will be redelivered",
                ", ".join(str(d.message_id) for d in deliveries),
            )

    async def ingest(self, delivery: Delivery) -> None:
        await self.ingest_many([delivery])

    async def ingest_many(self, deliveries: list[Delivery]) -> None:
        """Status messages in the order they came: each task's run applied under its lock,
        then acked (after the write: a failed write means a redelivery)."""
        runs: list[tuple[TaskRef, list[tuple[Delivery, StatusMessage]]]] = []
        for delivery in deliveries:
            read = self._read.pop((delivery.connection_epoch, delivery.tag), None)
            msg_or_error = read[1] if read and read[0] is delivery else _decode(delivery)
            if isinstance(msg_or_error, MalformedMessage):
                exc = msg_or_error
                log.warning(
                    "dead-lettering status message %s: %s (%s)",
                    delivery.message_id,
                    exc.reason,
                    str(exc)[:300],
                )
                self.metrics.messages.labels("malformed").inc()
                self.broker.refuse(delivery, exc.reason, str(exc))
                continue
            msg = msg_or_error
            if runs and runs[-1][0].uid == msg.task.uid:
                runs[-1][1].append((delivery, msg))
            else:
                runs.append((msg.task, [(delivery, msg)]))
        for ref, run in runs:
            await self._ingest_run(ref, run)

    async def _ingest_run(self, ref: TaskRef, run: list[tuple[Delivery, StatusMessage]]) -> None:
        task = await self.table.lookup(ref)
        if task is None:
            log.info("status for %s/%s, which no longer exists", ref.namespace, ref.name)
            self.metrics.messages.labels("orphaned").inc(len(run))
            if not all(msg.phase.terminal for _, msg in run):
                await stop_work(self.broker, ref, "cancel", "Deleted")
        else:
            async with task.lock:
                await self._apply(task, [msg for _, msg in run])
        for delivery, _ in run:
            self.broker.ack(delivery)

    async def _apply(self, task: TaskState, msgs: list[StatusMessage]) -> None:
        """Apply a task's messages in order. A change that is not terminal may be held
        (``staged``) while later messages of the same batch are applied on top of it, so
        a task that started and finished before its Processing write went out is written
        once (with its startTime and attempts); terminal phases and retries are written at
        once, and whatever is staged is written before this returns (before the acks)."""
        staged: dict[str, Any] | None = None
        fold = task.spec is None or task.spec.webhook is None  # webhooks: an event a phase
        for msg in msgs:
            msg = self.payloads.judge(task.namespace, task.uid, msg)  # a result_ref refused
            current = task.status if staged is None else staged
            change = st.classify(current, msg, task.last_seq(msg.attempt))
            if change is st.Change.IGNORE:
                self.metrics.messages.labels("ignored").inc()
                await self._stop_duplicate(task, msg)
                continue
            task.applied(msg.attempt, msg.seq)
            if change is st.Change.PROGRESS and staged is None and self.writer.coalesce(task, msg):
                self.metrics.messages.labels("coalesced").inc()
                continue
            self.metrics.messages.labels("applied").inc()
            start = None if fold else st.implied_start(msg)
            if start is not None and msg.attempt > int(current.get("attempts") or 0):
                # webhooks: an event a phase, the worker's withheld Processing included
                await self.writer.write(task, st.apply(current, start, utcnow(), task.generation))
                current = task.status
            if self._retries(task, msg):
                if staged is not None:
                    await self.writer.write(task, staged)
                    staged = None
                await self._retry(task, msg)
                continue
            if staged is not None:
                self.metrics.messages.labels("folded").inc()  # one write fewer
            staged = st.apply(current, msg, utcnow(), task.generation)
            phase = st.phase_of(staged)
            if not fold or (phase is not None and phase.terminal):
                await self.writer.write(task, staged)
                staged = None
        if staged is not None:
            await self.writer.write(task, staged)

    def _retries(self, task: TaskState, msg: StatusMessage) -> bool:
        spec = task.spec
        return bool(spec is not None and spec.retries and st.retries_left(msg, spec.retries))

    async def _retry(self, task: TaskState, msg: StatusMessage) -> None:
        spec = task.spec
        assert spec is not None
        delay = spec.retry_delay(msg.attempt, self.retry_backoff_cap_seconds)
        retry_at = datetime.fromtimestamp(time.time() + delay, UTC)
        await self.writer.write(
            task, st.retrying(task.status, msg, retry_at, spec.retries, utcnow(), task.generation)
        )
        self.events.record(task.ref, "Retrying", str(task.status.get("message")))

    async def _stop_duplicate(self, task: TaskState, msg: StatusMessage) -> None:
        """A worker runs an attempt that is already over (a duplicate delivery, or a task
        cancelled or timed out meanwhile): tell it to stop, once."""
        phase = st.phase_of(task.status)
        if (
            msg.phase is Phase.PROCESSING
            and phase is not None
            and phase.terminal
            and task.stop_once(msg.attempt)
        ):
            log.info(
                "%s/%s is %s but attempt %d runs: stopping it",
                task.namespace,
                task.name,
                phase.value,
                msg.attempt,
            )
            await stop_work(
                self.broker,
                task.ref,
                "timeout" if phase is Phase.TIMED_OUT else "cancel",
                phase.value,
            )

    async def dead_letter(self, delivery: Delivery) -> None:
        """A task message RabbitMQ dead-lettered: its workers kept dying, or it was refused.

        Its task ends in Error even when its body cannot be read: the headers (or the
        message id, ``task:<uid>:<attempt>``) still say which task it was."""
        why = delivery.dead_letter_reason
        unreadable = ""
        try:
            msg = decode(TaskMessage, delivery.body)
            ref: TaskRef | str | None = msg.task
            attempt: int | None = msg.attempt
        except MalformedMessage as exc:
            unreadable = f"{exc.reason}: {exc}"
            ref, attempt = wanted_task(delivery.headers, delivery.message_id)
        task = await self._dead_letter_task(ref)
        if task is None:
            log.warning(
                "dead-lettered task message %s (%s) names no task this operator "
                "knows%s; it is kept in %s",
                delivery.message_id,
                why,
                f" and cannot be read ({unreadable[:300]})" if unreadable else "",
                topology.DEAD_LETTER_QUEUE,
            )
            self.broker.ack(delivery)
            return
        self.metrics.dead_lettered.labels(metric_label(why)).inc()
        reason, text = dead_letter_error(why, attempt, delivery.headers, unreadable)
        async with task.lock:
            await self.writer.end(task, Phase.ERROR, reason, text)
        self.events.record(task.ref, "DeadLettered", f"task message dead-lettered: {why}")
        self.broker.ack(delivery)

    async def _dead_letter_task(self, ref: TaskRef | str | None) -> TaskState | None:
        if isinstance(ref, TaskRef):
            return await self.table.lookup(ref)
        return self.table.get(ref) if ref else None


def _decode(delivery: Delivery) -> StatusMessage | MalformedMessage:
    try:
        return decode(StatusMessage, delivery.body)
    except MalformedMessage as exc:
        return exc


def lane_key(delivery: Delivery) -> str:
    """The task a delivery is about, from its deterministic message id (``status:<uid>:…``,
    ``task:<uid>:…``), so a task's status messages and dead letters share one lane; a
    delivery without such an id goes to the shared lane ``""`` (still in order)."""
    kind, _, rest = (delivery.message_id or "").partition(":")
    uid = rest.partition(":")[0]
    return uid if kind in ("status", "task") and uid else ""
