"""The operator's RabbitMQ side: one thread, one pika connection, bridged to asyncio.

pika connections are not thread-safe and block, so they never run on kopf's event loop.
This thread owns the connection: it publishes task and control messages with publisher
confirms (the asyncio side awaits a future), consumes the status queue (deliveries are
handed to the event loop) and performs the acks the event loop asks for.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from asynctask_worker import _amqp, topology
from asynctask_worker.messages import CONTENT_TYPE, ControlMessage, TaskMessage, encode

log = logging.getLogger("asynctask.operator.broker")


@dataclass(frozen=True)
class Delivery:
    """A status message handed to the event loop; ack or reject it through the broker."""

    tag: int
    body: bytes
    message_id: str | None
    connection_epoch: int  # which connection it came on: acks for older ones are moot
    queue: str = topology.STATUS_QUEUE
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def dead_letter_reason(self) -> str:
        """Why it was dead-lettered: the refusing consumer's reason (``NotJson``, ``TooDeep``,
        ``NoHandler``…, see :mod:`asynctask_worker.topology`) or RabbitMQ's
        (``delivery_limit``, ``rejected``, ``expired``)."""
        reason: Any = self.headers.get(topology.DEAD_REASON_HEADER)
        if not reason:
            deaths = self.headers.get("x-death")
            first = deaths[0] if isinstance(deaths, list) and deaths else {}
            first = first if isinstance(first, dict) else {}
            reason = first.get("reason") or self.headers.get("x-first-death-reason")
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        return str(reason or "unknown")


_Command = Callable[[], None]


class Broker(threading.Thread):
    def __init__(
        self,
        amqp_url: str,
        *,
        prefetch: int = 256,
        heartbeat: int = 30,
        reconnect_max_delay: float = 30.0,
        on_retry: Callable[[], object] = lambda: None,
    ) -> None:
        super().__init__(name="asynctask-broker", daemon=True)
        self._link = _amqp.Link(
            _amqp.parameters(amqp_url, heartbeat=heartbeat), name="operator broker", log=log
        )
        self._prefetch = prefetch
        self._max_delay = reconnect_max_delay
        self._commands: queue.Queue[_Command] = queue.Queue()
        self._stopping = threading.Event()
        self._declared: set[str] = set()
        self._publish: BlockingChannel | None = None
        self._consume: BlockingChannel | None = None
        self._on_delivery: Callable[[Delivery], object] | None = None
        self._on_retry = on_retry  # a publish cut short by a lost connection, done again
        self._dead_tag = ""
        self.connected = threading.Event()

    # asyncio side ---------------------------------------------------------------------

    def start_consuming(
        self, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Delivery]
    ) -> None:
        """Hand every status delivery to ``inbox`` on ``loop``; then start the thread."""
        self._on_delivery = lambda d: loop.call_soon_threadsafe(inbox.put_nowait, d)
        self.start()

    async def publish_task(self, msg: TaskMessage) -> None:
        """Publish a task message durably; returns once the broker confirmed it."""
        await asyncio.wrap_future(self._submit(lambda: self._publish_task(msg)))

    async def publish_control(self, msg: ControlMessage) -> None:
        await asyncio.wrap_future(self._submit(lambda: self._publish_control(msg)))

    def ack(self, delivery: Delivery) -> None:
        self._commands.put(lambda: self._settle(delivery, ack=True))

    def reject(self, delivery: Delivery) -> None:
        """Dead-letter a delivery (malformed or unprocessable)."""
        self._commands.put(lambda: self._settle(delivery, ack=False))

    def refuse(self, delivery: Delivery, reason: str, detail: str) -> None:
        """Dead-letter a delivery with why in its headers (confirmed), then ack it."""
        self._commands.put(lambda: self._refuse(delivery, reason, detail))

    def stop(self) -> None:
        self._stopping.set()

    def _submit(self, fn: Callable[[], None]) -> Future[None]:
        fut: Future[None] = Future()

        def run() -> None:
            if not fut.running() and not fut.set_running_or_notify_cancel():
                return
            try:
                fn()
            except pika.exceptions.AMQPConnectionError:
                # Retried on the next connection. The message may have reached its queue
                # already (only the confirm was lost): it may then be there twice.
                self._on_retry()
                self._commands.put(run)
                raise
            except pika.exceptions.AMQPChannelError as exc:
                fut.set_exception(exc)
                raise  # the channel may be closed: start over on a new connection
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
                fut.set_exception(exc)
            else:
                fut.set_result(None)

        self._commands.put(run)
        return fut

    # broker thread --------------------------------------------------------------------

    @property
    def connection_epoch(self) -> int:
        """Connections made so far: a delivery from an older one can no longer be settled."""
        return self._link.epoch

    def run(self) -> None:
        try:
            _amqp.run_connected(
                self._link,
                self._serve,
                max_delay=self._max_delay,
                keep_going=lambda: not self._stopping.is_set(),
                on_lost=self._lost,
                wait=self._stopping.wait,
            )
        finally:
            self._lost()
            self._link.close()

    def _serve(self, connection: pika.BlockingConnection) -> None:
        self._declared.clear()
        self._publish = connection.channel()
        self._publish.confirm_delivery()
        topology.declare_all(self._publish)
        self._consume = connection.channel()
        self._consume.basic_qos(prefetch_count=self._prefetch)
        self._consume.basic_consume(topology.STATUS_QUEUE, self._deliver)
        self._dead_tag = self._consume.basic_consume(topology.DEAD_TASKS_QUEUE, self._deliver)
        self.connected.set()
        self._link.serving()
        log.info(
            "connected to RabbitMQ; consuming %s and %s",
            topology.STATUS_QUEUE,
            topology.DEAD_TASKS_QUEUE,
        )
        while not self._stopping.is_set():
            connection.process_data_events(time_limit=0.05)
            self._run_commands()

    def _lost(self) -> None:
        self.connected.clear()
        self._publish = self._consume = None

    def _run_commands(self) -> None:
        for _ in range(1000):
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            command()

    def _deliver(
        self, ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        assert self._on_delivery is not None
        queue = (
            topology.DEAD_TASKS_QUEUE
            if method.consumer_tag == self._dead_tag
            else topology.STATUS_QUEUE
        )
        self._on_delivery(
            Delivery(
                method.delivery_tag,
                body,
                props.message_id,
                self._link.epoch,
                queue,
                dict(props.headers or {}),
            )
        )

    def _settle(self, delivery: Delivery, *, ack: bool) -> None:
        if delivery.connection_epoch != self._link.epoch or self._consume is None:
            return  # that channel is gone; the broker redelivers the message
        if ack:
            self._consume.basic_ack(delivery.tag)
        else:
            self._consume.basic_reject(delivery.tag, requeue=False)

    def _refuse(self, delivery: Delivery, reason: str, detail: str) -> None:
        if delivery.connection_epoch != self._link.epoch or self._publish is None:
            return  # that channel is gone; the broker redelivers the message
        topology.dead_letter(
            self._publish,
            queue=delivery.queue,
            body=delivery.body,
            properties=pika.BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=delivery.message_id,
            ),
            headers=topology.dead_letter_headers(
                delivery.headers, queue=delivery.queue, reason=reason, detail=detail, by="operator"
            ),
        )
        self._settle(delivery, ack=True)

    def _publish_task(self, msg: TaskMessage) -> None:
        assert self._publish is not None
        if msg.queue not in self._declared:
            topology.declare_task_queue(self._publish, msg.queue)
            self._declared.add(msg.queue)
        self._publish.basic_publish(
            exchange="",
            routing_key=topology.task_queue_name(msg.queue),
            body=encode(msg),
            properties=pika.BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=msg.message_id,
                type="task",
                headers={
                    # the task, readable even if the body is not (see topology)
                    topology.TASK_UID_HEADER: msg.task.uid,
                    topology.TASK_NAMESPACE_HEADER: msg.task.namespace,
                    topology.TASK_NAME_HEADER: msg.task.name,
                    topology.TASK_ATTEMPT_HEADER: msg.attempt,
                },
            ),
            mandatory=True,
        )

    def _publish_control(self, msg: ControlMessage) -> None:
        assert self._publish is not None
        self._publish.basic_publish(
            exchange=topology.CONTROL_EXCHANGE,
            routing_key="",
            body=encode(msg),
            properties=pika.BasicProperties(
                content_type=CONTENT_TYPE,
                type="control",
                message_id=f"control:{msg.action}:{msg.task.uid}",
            ),
        )
