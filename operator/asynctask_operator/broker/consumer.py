"""The operator's RabbitMQ side: one consuming thread and a few publishing ones, bridged
to asyncio.

pika connections are not thread-safe and block, so they never run on kopf's event loop.
This thread owns the consuming connection: it consumes the status and dead-letter queues
and performs the acks (and dead-letterings) the event loop asks for. It works in turns: the
deliveries one turn of pika's I/O brought are handed to the event loop at once (one wake-up
of the loop, not one a delivery), and the acks asked for meanwhile go out together, a run
of them as one ``multiple`` ack (:mod:`asynctask_worker.acks`). Task and control messages go out
through :mod:`publishers`, with publisher confirms, several at a time (the asyncio side
awaits a future).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from asynctask_operator.broker.publishers import Publishers
from asynctask_operator.ports import Delivery
from asynctask_worker import amqp as _amqp
from asynctask_worker import topology
from asynctask_worker.acks import AckBook
from asynctask_worker.messages import CONTENT_TYPE, ControlMessage, TaskMessage

log = logging.getLogger("asynctask.operator.broker")


_Command = Callable[[], None]
#: The most commands (acks, rejects, refusals) one turn runs before pika reads again.
TURN_COMMANDS = 1000


def _put_all(inbox: asyncio.Queue[Delivery], batch: list[Delivery]) -> None:
    for delivery in batch:
        inbox.put_nowait(delivery)


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
        # Appended by the event loop, taken by this thread (deque's ends are thread-safe):
        # the thread looks at it each turn, so nothing needs waking.
        self._commands: deque[_Command] = deque()
        self._arrived: list[Delivery] = []  # this turn's deliveries, not yet handed over
        self._book = AckBook()  # the consuming channel's deliveries not yet settled
        self._to_ack: list[int] = []  # this turn's acks, sent at its end
        self._stopping = threading.Event()
        self._publish: BlockingChannel | None = None
        self._consume: BlockingChannel | None = None
        self._on_delivery: Callable[[list[Delivery]], object] | None = None
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
        handoff = self._publishers.handoff(loop)
        self._on_delivery = lambda batch: handoff.call(lambda: _put_all(inbox, batch))
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
        self._commands.append(lambda: self._settle(delivery, ack=True))

    def reject(self, delivery: Delivery) -> None:
        """Dead-letter a delivery (malformed or unprocessable)."""
        self._commands.append(lambda: self._settle(delivery, ack=False))

    def refuse(self, delivery: Delivery, reason: str, detail: str) -> None:
        """Dead-letter a delivery with why in its headers (confirmed), then ack it."""
        self._commands.append(lambda: self._refuse(delivery, reason, detail))

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
        self._arrived, self._to_ack = [], []
        self._book.reset()  # a new channel: what the old one delivered is redelivered
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
            self._hand_over()
            self._run_commands()
        self._run_commands()  # what was asked before stop() (acks) is done before closing

    def _lost(self) -> None:
        self.connected.clear()
        self._arrived, self._to_ack = [], []
        self._book.reset()
        self._publish = self._consume = None

    def _hand_over(self) -> None:
        if self._arrived:
            assert self._on_delivery is not None
            batch, self._arrived = self._arrived, []
            self._on_delivery(batch)

    def _run_commands(self) -> None:
        """What the event loop asked for since the last turn, in order; then the acks."""
        commands = self._commands
        for _ in range(min(len(commands), TURN_COMMANDS)):
            commands.popleft()()
        self._send_acks()

    def _send_acks(self) -> None:
        if not self._to_ack or self._consume is None:
            return
        acks = self._book.plan(self._to_ack)
        self._to_ack = []
        frames = [(tag, False) for tag in acks.singles]
        if acks.up_to is not None:
            frames.append((acks.up_to, True))
        if not frames:
            return  # none of them open any more (an old channel's, or acked already)
        # BlockingChannel.basic_ack writes its frame to the socket at once (a send, and a
        # turn of pika's poller, each); the channel underneath only queues it. All but the
        # last are queued there, and the last one's basic_ack sends them together.
        *queued, (last, multiple) = frames
        for tag, many in queued:
            self._consume._impl.basic_ack(delivery_tag=tag, multiple=many)
        self._consume.basic_ack(last, multiple=multiple)

    def _deliver(
        self, ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        queue = (
            topology.DEAD_TASKS_QUEUE
            if method.consumer_tag == self._dead_tag
            else topology.STATUS_QUEUE
        )
        self._book.delivered(method.delivery_tag)
        self._arrived.append(
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
            self._to_ack.append(delivery.tag)  # sent at the end of the turn
        elif self._book.settled(delivery.tag):
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
