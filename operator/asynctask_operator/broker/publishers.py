"""Publishing with confirms, many in flight: a small pool of publisher connections.

A confirm from a quorum queue comes once the message is in a majority's log (written to
disk): a few milliseconds. Each :class:`~broker.publisher.Publisher` thread owns one
connection and one channel in confirm mode and keeps up to ``window`` publishes in flight
on it: it takes what the pool's queue holds, sends it all (pika writes the frames
together), and settles each publish's future from RabbitMQ's answers
(:mod:`asynctask_worker.confirms`: one ``basic.ack`` with ``multiple`` may settle many; a
``basic.nack``, or a ``basic.return`` of an unroutable task message, fails its future).
A publish queued while every thread sleeps wakes one; publishes queued before it looks,
or while a thread is busy, ride along (one wake-up for many). A lost connection queues its
unanswered publishes again, first in line, for the next connection of the pool
(at-least-once: a message may then reach its queue twice).

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
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeVar

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel

from asynctask_operator.broker.handoff import Handoff
from asynctask_operator.broker.publisher import WINDOW, Job, Publisher
from asynctask_worker import amqp as _amqp
from asynctask_worker import topology
from asynctask_worker.messages import CONTENT_TYPE, ControlMessage, TaskMessage, encode

log = logging.getLogger("asynctask.operator.publishers")

T = TypeVar("T")


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
        window: int = WINDOW,
    ) -> None:
        self.pending: deque[Job] = deque()  # appended by the loop, taken by the threads
        self._lock = threading.Lock()  # guards the two below
        self._ready: list[Publisher] = []  # threads serving on an open connection
        self._waking: Publisher | None = None  # will look soon: later jobs ride along
        self._turn = 0
        self._stopping = threading.Event()
        #: Held while declaring anything, by every connection of the operator.
        self.declaring = threading.Lock()
        self._declared: set[str] = set()  # task queues declared (again after a reconnect)
        self._handoff: Handoff | None = None  # confirms reach the event loop through it
        self._on_retry = on_retry  # a publish cut short by a lost connection, done again
        self.threads = [
            Publisher(
                _amqp.Link(
                    _amqp.parameters(amqp_url, heartbeat=heartbeat),
                    name=f"operator publisher {i + 1}",
                    log=log,
                ),
                self,
                self._stopping,
                reconnect_max_delay,
                window,
            )
            for i in range(size)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            ready = list(self._ready)
        for thread in ready:
            thread.wake()

    def join(self, timeout: float) -> None:
        for thread in self.threads:
            thread.join(timeout)

    async def publish_task(self, msg: TaskMessage) -> None:
        def publish(channel: BlockingChannel) -> None:
            if msg.queue not in self._declared:
                self.declare(channel, msg.queue)
            _task(channel, msg)

        await self._settled(self._submit(publish, message_id=msg.message_id, queue=msg.queue))

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

        await self._settled(self._submit(declare, confirmed=False))
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

    def declare(self, channel: BlockingChannel, task_queue: str | None = None) -> None:
        """Declare the topology (on a new connection) or a task queue, one at a time."""
        with self.declaring:
            if task_queue is None:
                self._declared.clear()  # a queue deleted meanwhile is declared again
                topology.declare_all(channel)
            elif task_queue not in self._declared:
                topology.declare_task_queue(channel, task_queue)
                self._declared.add(task_queue)

    def undeclared(self, task_queue: str | None) -> None:
        """A message to ``task_queue`` came back: the queue was deleted meanwhile."""
        self._declared.discard(task_queue or "")

    def _submit(
        self,
        run: Callable[[BlockingChannel], None],
        *,
        confirmed: bool = True,
        message_id: str | None = None,
        queue: str | None = None,
    ) -> Future[None]:
        """Queue ``run`` for the pool; the future settles with its confirm (or when a
        blocking call returns). Cut short by a lost connection, it is queued again and
        done on the next one: the message may then reach its queue twice."""
        fut: Future[None] = Future()
        self.pending.append(Job(fut, run, confirmed, message_id, queue))
        self.wake()
        return fut

    # the threads' side ------------------------------------------------------------------

    def wake(self) -> None:
        """Wake a serving thread to look at the queue, unless one is woken already (or
        none serves: a thread looks at the queue as soon as it is connected)."""
        with self._lock:
            if self._waking is not None or not self._ready:
                return
            target = self._ready[self._turn % len(self._ready)]
            self._turn += 1
            self._waking = target
        if not target.wake():  # its connection is closing: it wakes another as it leaves
            with self._lock:
                if self._waking is target:
                    self._waking = None

    def looked(self, thread: Publisher) -> None:
        """``thread`` looks at the queue now: a job queued from now on wakes a thread."""
        if self._waking is thread:
            with self._lock:
                if self._waking is thread:
                    self._waking = None

    def lingers(self, thread: Publisher) -> bool:
        """``thread`` will look again within :data:`LINGER_SECONDS`: jobs queued until
        then need no wake-up (False: another thread is woken already)."""
        with self._lock:
            if self._waking is None:
                self._waking = thread
            return self._waking is thread

    def joined(self, thread: Publisher) -> None:
        with self._lock:
            self._ready.append(thread)

    def left(self, thread: Publisher, unanswered: list[Job]) -> None:
        """``thread``'s connection is gone: its unanswered publishes go to another one."""
        with self._lock:
            if thread in self._ready:
                self._ready.remove(thread)
            if self._waking is thread:
                self._waking = None
        if self._stopping.is_set():
            return  # the process is going: its publishes are done again on restart
        self.requeue(unanswered)
        if self.pending:
            self.wake()

    def requeue(self, jobs: list[Job]) -> None:
        """Publishes cut short by a lost connection: first in line again."""
        for _ in jobs:
            self._on_retry()
        self.pending.extendleft(reversed(jobs))


def _task(channel: BlockingChannel, msg: TaskMessage) -> None:
    channel._impl.basic_publish(
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
    channel._impl.basic_publish(
        exchange=topology.CONTROL_EXCHANGE,
        routing_key="",
        body=encode(msg),
        properties=pika.BasicProperties(
            content_type=CONTENT_TYPE,
            type="control",
            message_id=f"control:{msg.action}:{msg.task.uid}",
        ),
    )
