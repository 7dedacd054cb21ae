"""What the operator does with the messages that come back from RabbitMQ.

Worker status messages (``asynctask.status``) move a task through its phases; delivery
is at-least-once and messages come late, twice or out of order, so :mod:`status` decides
what each one means and duplicates are harmless. Dead-lettered task messages
(``asynctask.dead-tasks``) end their task in Error. A message is acked only once what it
caused is written, so a failed write means a redelivery, never a lost update; while the
apiserver is unavailable, a message waits (unacked) and its write is tried again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from asynctask_operator import status as st
from asynctask_operator.broker import Delivery
from asynctask_operator.dead_letters import dead_letter_error, metric_label, wanted_task
from asynctask_operator.kube import unavailable
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.ports import EventSink, TaskBroker
from asynctask_operator.tasks import TaskState, TaskTable
from asynctask_operator.tracking import stop_work
from asynctask_operator.writer import StatusWriter
from asynctask_worker import _amqp, topology
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


class StatusInbox:
    def __init__(self, table: TaskTable, writer: StatusWriter, broker: TaskBroker,
                 events: EventSink, metrics: OperatorMetrics, *,
                 retry_backoff_cap_seconds: float) -> None:
        self.table = table
        self.writer = writer
        self.broker = broker
        self.events = events
        self.metrics = metrics
        self.retry_backoff_cap_seconds = retry_backoff_cap_seconds
        #: Longest wait between two tries of a status write while the API is unavailable.
        self.api_retry_max_seconds = 5.0
        self._api_down_since: float | None = None

    async def consume(self, inbox: asyncio.Queue[Delivery]) -> None:
        """Handle the broker's deliveries, in order, until cancelled."""
        while True:
            delivery = await inbox.get()
            try:
                await self.handle(delivery)
            except Exception:
                log.exception("failed to process message %s; it will be redelivered",
                              delivery.message_id)

    async def handle(self, delivery: Delivery) -> None:
        """Handle one delivery; while the apiserver is unavailable, wait and try again.

        The message stays unacked meanwhile (nothing else would bring it back before the
        broker connection drops: an unacked message is not redelivered on its own), and
        the deliveries behind it wait too, in order. An outage is told once, with its
        cause, and its end once, with how long it lasted.
        """
        backoff = _amqp.Backoff(self.api_retry_max_seconds,
                                first=min(0.5, self.api_retry_max_seconds))
        while True:
            try:
                if delivery.queue == topology.DEAD_TASKS_QUEUE:
                    await self.dead_letter(delivery)
                else:
                    await self.ingest(delivery)
            except Exception as exc:
                if not unavailable(exc):
                    raise
                if self._api_down_since is None:
                    self._api_down_since = time.monotonic()
                    log.warning("cannot write status: the Kubernetes API is unavailable "
                                "(%s); status messages wait, unacked, and are retried",
                                _amqp.describe(exc))
                await asyncio.sleep(backoff.next())
                continue
            if self._api_down_since is not None:
                log.info("the Kubernetes API answers again after %.1fs; writing the "
                         "status messages that waited",
                         time.monotonic() - self._api_down_since)
                self._api_down_since = None
            return

    async def ingest(self, delivery: Delivery) -> None:
        try:
            msg = decode(StatusMessage, delivery.body)
        except MalformedMessage as exc:
            log.warning("dead-lettering status message %s: %s (%s)", delivery.message_id,
                        exc.reason, str(exc)[:300])
            self.metrics.messages.labels("malformed").inc()
            self.broker.refuse(delivery, exc.reason, str(exc))
            return
        task = await self.table.lookup(msg.task)
        if task is None:
            log.info("status for %s/%s, which no longer exists", msg.task.namespace,
                     msg.task.name)
            self.metrics.messages.labels("orphaned").inc()
            if not msg.phase.terminal:
                await stop_work(self.broker, msg.task, "cancel", "Deleted")
            self.broker.ack(delivery)
            return
        async with task.lock:
            await self._apply(task, msg)
        # Acked after the write: if the write failed (exception), the message is redelivered.
        self.broker.ack(delivery)

    async def _apply(self, task: TaskState, msg: StatusMessage) -> None:
        change = st.classify(task.status, msg, task.seq.get(msg.attempt))
        if change is st.Change.IGNORE:
            self.metrics.messages.labels("ignored").inc()
            await self._stop_duplicate(task, msg)
            return
        task.seq[msg.attempt] = msg.seq
        if change is st.Change.PROGRESS and self.writer.coalesce(task, msg):
            self.metrics.messages.labels("coalesced").inc()
            return
        self.metrics.messages.labels("applied").inc()
        now = utcnow()
        spec = task.spec
        if spec is not None and spec.retries and st.retries_left(msg, spec.retries):
            delay = spec.retry_delay(msg.attempt, self.retry_backoff_cap_seconds)
            retry_at = datetime.fromtimestamp(time.time() + delay, UTC)
            await self.writer.write(task, st.retrying(task.status, msg, retry_at, spec.retries,
                                                      now, task.generation))
            self.events.record(task.ref, "Retrying", str(task.status.get("message")))
            return
        await self.writer.write(task, st.apply(task.status, msg, now, task.generation))

    async def _stop_duplicate(self, task: TaskState, msg: StatusMessage) -> None:
        """A worker runs an attempt that is already over (a duplicate delivery, or a task
        cancelled or timed out meanwhile): tell it to stop, once."""
        phase = st.phase_of(task.status)
        if (msg.phase is Phase.PROCESSING and phase is not None and phase.terminal
                and msg.attempt not in task.stopped):
            task.stopped.add(msg.attempt)
            log.info("%s/%s is %s but attempt %d runs: stopping it", task.ref.namespace,
                     task.ref.name, phase.value, msg.attempt)
            await stop_work(self.broker, task.ref,
                            "timeout" if phase is Phase.TIMED_OUT else "cancel", phase.value)

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
            log.warning("dead-lettered task message %s (%s) names no task this operator "
                        "knows%s; it is kept in %s", delivery.message_id, why,
                        f" and cannot be read ({unreadable[:300]})" if unreadable else "",
                        topology.DEAD_LETTER_QUEUE)
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

