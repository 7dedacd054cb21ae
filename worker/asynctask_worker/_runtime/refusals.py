"""Refusing the task messages a worker cannot run: malformed, or for no handler here.

Each delivery is decoded and checked before the dispatcher sees it. One that cannot run
here goes to its queue's dead-letter queue with why in its headers (the operator
ends the task in Error with it), published with confirms on a channel of its own, then the
delivery is acked: if the connection fails in between, the message comes back and is
refused again. Runs on the consumer thread, which owns the connection.
"""

from __future__ import annotations

import logging

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from asynctask_worker import topology
from asynctask_worker.app import App
from asynctask_worker.messages import MalformedMessage, TaskMessage, decode
from asynctask_worker.metrics import WorkerMetrics

log = logging.getLogger("asynctask.worker")


class Refusals:
    """Checks deliveries against the app; dead-letters those it refuses on a confirmed
    channel of its own (one per connection)."""

    def __init__(self, app: App, metrics: WorkerMetrics, *, worker_id: str) -> None:
        self.app = app
        self.metrics = metrics
        self.worker_id = worker_id
        self._channel: BlockingChannel | None = None

    def forget(self) -> None:
        """The connection is gone: the next refusal opens a channel on the new one."""
        self._channel = None

    def accept(
        self,
        conn: pika.BlockingConnection,
        ch: BlockingChannel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
        *,
        queue: str,
    ) -> TaskMessage | None:
        """The task message of a delivery from ``queue``; None if it was refused."""
        try:
            msg = decode(TaskMessage, body)
        except MalformedMessage as exc:
            self.refuse(
                conn, ch, method, props, body, queue=queue, reason=exc.reason, detail=str(exc)
            )
            return None
        if msg.queue not in self.app.tasks:
            detail = (
                f"no handler for queue {msg.queue!r} in this worker (it has "
                f"{', '.join(self.app.queues)})"
            )
            self.refuse(
                conn, ch, method, props, body, queue=queue, reason="NoHandler", detail=detail
            )
            return None
        return msg

    def refuse(
        self,
        conn: pika.BlockingConnection,
        ch: BlockingChannel,
        method: Basic.Deliver,
        props: BasicProperties,
        body: bytes,
        *,
        queue: str,
        reason: str,
        detail: str,
    ) -> None:
        """Dead-letter one delivery of ``ch`` (from ``queue``), saying why, then ack it."""
        log.warning(
            "dead-lettering task message %s from %s: %s (%s)",
            props.message_id,
            queue,
            reason,
            detail[:300],
        )
        self.metrics.dead_lettered.labels(reason).inc()
        if self._channel is None or not self._channel.is_open:
            self._channel = conn.channel()
            self._channel.confirm_delivery()
        topology.dead_letter(
            self._channel,
            queue=queue,
            body=body,
            properties=props,
            headers=topology.dead_letter_headers(
                props.headers,
                queue=queue,
                reason=reason,
                detail=detail,
                by=f"worker {self.worker_id}",
            ),
        )
        ch.basic_ack(method.delivery_tag)
