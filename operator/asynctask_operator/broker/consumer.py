"""The operator's RabbitMQ side: one consuming thread and a few publishing ones, bridged
to asyncio.

pika connections are not thread-safe and block, so they never run on kopf's event loop.
This thread owns the consuming connection: it consumes the status and dead-letter queues
(deliveries are handed to the event loop) and performs the acks (and dead-letterings) the
event loop asks for. Task and control messages go out through :mod:`publishers`, with
publisher confirms, several at a time (the asyncio side awaits a future).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from asynctask_operator.broker.publishers import Publishers
from asynctask_operator.ports import Delivery
from asynctask_worker import amqp as _amqp
from asynctask_worker import topology
from asynctask_worker.messages import CONTENT_TYPE, ControlMessage, TaskMessage

log = logging.getLogger("asynctask.operator.broker")


_Command = Callable[[], None]


class Broker(threading.Thread):
    def __init__(
        self,
        amqp_url: str,
        *,
        prefetch: int = 256,
        publishers: int = 4,
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
        self._publish: BlockingChannel | None = None
        self._consume: BlockingChannel | None = None
        self._on_delivery: Callable[[Delivery], object] | None = None
        self._dead_tag = ""
        self.connected = threading.Event()
        self._publishers = Publishers(
            amqp_url,
            size=publishers,
            heartbeat=heartbeat,
            reconnect_max_delay=reconnect_max_delay,
            on_retry=on_retry,
        )

    # asyncio side ---------------------------------------------------------------------

    def start_consuming(
        self, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[Delivery]
    ) -> None:
        """Hand every status delivery to ``inbox`` on ``loop``; then start the thread."""
        self._on_delivery = lambda d: loop.call_soon_threadsafe(inbox.put_nowait, d)
        self._publishers.start()
        self.start()

    async def publish_task(self, msg: TaskMessage) -> None:
        """Publish a task message durably; returns once the broker confirmed it."""
        await self._publishers.publish_task(msg)

    async def publish_control(self, msg: ControlMessage) -> None:
        await self._publishers.publish_control(msg)

    async def queue_depth(self, queue: str) -> tuple[int, int]:
        """(messages ready, consumers) of a task queue (an AsyncQueue's status)."""
        return await self._publishers.queue_depth(queue)

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
        self._publishers.stop()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        self._publishers.join(timeout or 10)

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
        self._publish = connection.channel()
        self._publish.confirm_delivery()
        with self._publishers.declaring:
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
        self._run_commands()  # what was asked before stop() (acks) is done before closing

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
