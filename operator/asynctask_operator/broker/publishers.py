"""Publishing with confirms, several at a time: a small pool of publisher connections.

A confirm from a quorum queue comes once the message is in a majority's log (written to
disk): a few milliseconds. One blocking confirm channel publishes one message at a time, so
it capped how many tasks a second the operator could queue (about 130 here, below what the
apiserver takes), and a burst of new tasks waited in line for it. Each :class:`Publisher`
thread owns one connection and one confirm channel and takes the next publish from a queue
shared by the pool: up to ``size`` confirms are awaited at once.

Declarations are made one at a time in the whole process (:attr:`Publishers.declaring`):
RabbitMQ may close a channel that declares a new quorum queue while another channel
declares the same one.

Ordering: publishes of different tasks need none; a task's own publishes (its attempts,
then a cancel) are awaited one after the other by the task logic, so each is confirmed
before the next is sent, whichever thread sends it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from asynctask_operator.broker.handoff import Handoff
from asynctask_worker import amqp as _amqp
from asynctask_worker import topology
from asynctask_worker.messages import CONTENT_TYPE, ControlMessage, TaskMessage, encode

log = logging.getLogger("asynctask.operator.publishers")

T = TypeVar("T")

#: A publish, run on a publisher thread with its channel.
_Publish = Callable[[BlockingChannel], None]
#: How long an idle publisher waits for work before it lets pika read (heartbeats: the
#: operator asks for one every 30 s by default). Each idle wake-up costs CPU: at 0.05 s the
#: pool's four threads woke 80 times a second. :meth:`Publishers.stop` wakes them at once.
IDLE_SECONDS = 1.0


def _wake(channel: BlockingChannel) -> None:
    """Queued by :meth:`Publishers.stop`: nothing to publish, the thread looks up."""


class Publishers:
    """The pool: ``publish_task`` and ``publish_control`` return once RabbitMQ confirmed."""

    def __init__(
        self,
        amqp_url: str,
        *,
        size: int,
        heartbeat: int,
        reconnect_max_delay: float,
        on_retry: Callable[[], object],
    ) -> None:
        self._queue: queue.Queue[_Publish] = queue.Queue()
        self._stopping = threading.Event()
        #: Held while declaring anything, by every connection of the operator.
        self.declaring = threading.Lock()
        self._declared: set[str] = set()  # task queues declared (again after a reconnect)
        self._handoff: Handoff | None = None  # confirms reach the event loop through it
        self._on_retry = on_retry  # a publish cut short by a lost connection, done again
        self._threads = [
            Publisher(
                _amqp.Link(
                    _amqp.parameters(amqp_url, heartbeat=heartbeat),
                    name=f"operator publisher {i + 1}",
                    log=log,
                ),
                self._queue,
                self._stopping,
                reconnect_max_delay,
                self._declare,
            )
            for i in range(size)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        for _ in self._threads:
            self._queue.put(_wake)

    def join(self, timeout: float) -> None:
        for thread in self._threads:
            thread.join(timeout)

    async def publish_task(self, msg: TaskMessage) -> None:
        def publish(channel: BlockingChannel) -> None:
            if msg.queue not in self._declared:
                self._declare(channel, msg.queue)
            _task(channel, msg)

        await self._settled(self._submit(publish))

    async def publish_control(self, msg: ControlMessage) -> None:
        await self._settled(self._submit(lambda channel: _control(channel, msg)))

    async def queue_depth(self, task_queue: str) -> tuple[int, int]:
        """Messages ready in a task queue and its consumers: a declare with the queue's own
        arguments (it creates the queue if nobody has yet) answers both, at once."""
        found: list[tuple[int, int]] = []

        def declare(channel: BlockingChannel) -> None:
            ok = channel.queue_declare(
                topology.task_queue_name(task_queue),
                durable=True,
                arguments=topology.quorum_queue_arguments(),
            )
            self._declared.add(task_queue)
            found.append((int(ok.method.message_count), int(ok.method.consumer_count)))

        await self._settled(self._submit(declare))
        return found[0]

    def handoff(self, loop: asyncio.AbstractEventLoop) -> Handoff:
        """How the pool's results reach ``loop`` (the consuming thread's deliveries share
        it, so that a wake-up of the loop carries both)."""
        if self._handoff is None or self._handoff.loop is not loop:
            self._handoff = Handoff(loop)
        return self._handoff

    async def _settled(self, fut: Future[T]) -> T:
        """``fut``'s result, awaited on the running loop: the confirms of the pool's
        threads reach the loop together (:class:`handoff.Handoff`), not one wake-up each."""
        return await self.handoff(asyncio.get_running_loop()).result(fut)

    def _declare(self, channel: BlockingChannel, task_queue: str | None = None) -> None:
        """Declare the topology (on a new connection) or a task queue, one at a time."""
        with self.declaring:
            if task_queue is None:
                self._declared.clear()  # a queue deleted meanwhile is declared again
                topology.declare_all(channel)
            elif task_queue not in self._declared:
                topology.declare_task_queue(channel, task_queue)
                self._declared.add(task_queue)

    def _submit(self, publish: _Publish) -> Future[None]:
        """Queue ``publish`` for the next free publisher; the future settles with its
        confirm. Cut short by a lost connection, it is queued again and done on the next
        one: the message may then reach its queue twice (at-least-once)."""
        fut: Future[None] = Future()

        def run(channel: BlockingChannel) -> None:
            if not fut.running() and not fut.set_running_or_notify_cancel():
                return
            try:
                publish(channel)
            except pika.exceptions.AMQPConnectionError:
                self._on_retry()
                self._queue.put(run)
                raise
            except pika.exceptions.AMQPChannelError as exc:
                fut.set_exception(exc)
                raise  # the channel may be closed: start over on a new connection
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
                fut.set_exception(exc)
            else:
                fut.set_result(None)

        self._queue.put(run)
        return fut


class Publisher(threading.Thread):
    """One connection and confirm channel, publishing what the pool's queue holds."""

    def __init__(
        self,
        link: _amqp.Link,
        work: queue.Queue[_Publish],
        stopping: threading.Event,
        reconnect_max_delay: float,
        declare: Callable[[BlockingChannel], None],
    ) -> None:
        super().__init__(name=link.name.replace(" ", "-"), daemon=True)
        self._link = link
        self._work = work
        self._stopping = stopping
        self._max_delay = reconnect_max_delay
        self._declare = declare

    def run(self) -> None:
        try:
            _amqp.run_connected(
                self._link,
                self._serve,
                max_delay=self._max_delay,
                keep_going=lambda: not self._stopping.is_set(),
                wait=self._stopping.wait,
            )
        finally:
            self._link.close()

    def _serve(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        channel.confirm_delivery()
        self._declare(channel)  # a publish never waits for another connection's declarations
        self._link.serving()
        while not self._stopping.is_set():
            try:
                run = self._work.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                connection.process_data_events(time_limit=0)  # heartbeats
                continue
            run(channel)  # raises when the connection or channel failed


def _task(channel: BlockingChannel, msg: TaskMessage) -> None:
    channel.basic_publish(
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


def _control(channel: BlockingChannel, msg: ControlMessage) -> None:
    channel.basic_publish(
        exchange=topology.CONTROL_EXCHANGE,
        routing_key="",
        body=encode(msg),
        properties=pika.BasicProperties(
            content_type=CONTENT_TYPE,
            type="control",
            message_id=f"control:{msg.action}:{msg.task.uid}",
        ),
    )
