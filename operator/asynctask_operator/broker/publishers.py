"""Publishing with confirms, many in flight: a small pool of publisher connections.

A confirm from a quorum queue comes once the message is in a majority's log (written to
disk): a few milliseconds. Each :class:`Publisher` thread owns one connection and one
channel in confirm mode and keeps up to ``window`` publishes in flight on it: it takes what
the pool's queue holds, sends it all (pika writes the frames together), and settles each
publish's future from RabbitMQ's answers (:mod:`broker.confirms`: one ``basic.ack`` with
``multiple`` may settle many; a ``basic.nack``, or a ``basic.return`` of an unroutable
task message, fails its future). pika's ``BlockingChannel`` waits for each confirm before
it sends the next message, so publishes go out on the channel underneath it (``_impl``),
as the consuming thread's acks do (:mod:`broker.consumer`); declarations and the queue-depth
declare stay blocking calls. A thread sleeps in pika's I/O loop; a publish queued while it
sleeps wakes one thread, and publishes queued before it looks ride along (one wake-up for
many). A lost connection queues its unanswered publishes again, for the next connection
of the pool (at-least-once: a message may then reach its queue twice).

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
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar

import pika
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel, ReturnedMessage

from asynctask_operator.broker.confirms import ConfirmBook
from asynctask_operator.broker.handoff import Handoff
from asynctask_worker import amqp as _amqp
from asynctask_worker import topology
from asynctask_worker.messages import CONTENT_TYPE, ControlMessage, TaskMessage, encode

log = logging.getLogger("asynctask.operator.publishers")

T = TypeVar("T")

#: How long a publisher sleeps in pika's I/O loop (heartbeats are answered meanwhile)
#: before it looks at the queue without being woken: a safety net only.
IDLE_SECONDS = 1.0
#: Publishes one connection keeps in flight at most (unanswered by RabbitMQ).
WINDOW = 256
#: How long a stopping publisher waits for the answers to what it sent.
STOP_SECONDS = 2.0


@dataclass(eq=False)
class _Job:
    """A publish (``confirmed``: settled by RabbitMQ's answer) or a blocking call."""

    fut: Future[None]
    run: Callable[[BlockingChannel], None]
    confirmed: bool = True
    message_id: str | None = None  # a returned (unroutable) message is matched by it
    queue: str | None = None  # its task queue: declared again once a message is returned


def _nothing() -> None:
    """Queued on a publisher's connection to wake it: it looks at the queue."""


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
        self.pending: deque[_Job] = deque()  # appended by the loop, taken by the threads
        self._lock = threading.Lock()  # guards the two below
        self._ready: list[Publisher] = []  # threads serving on an open connection
        self._waking: Publisher | None = None  # woken, not yet looked: later jobs ride along
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
        self.pending.append(_Job(fut, run, confirmed, message_id, queue))
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

    def joined(self, thread: Publisher) -> None:
        with self._lock:
            self._ready.append(thread)

    def left(self, thread: Publisher, unanswered: list[_Job]) -> None:
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

    def requeue(self, jobs: list[_Job]) -> None:
        """Publishes cut short by a lost connection: first in line again."""
        for _ in jobs:
            self._on_retry()
        self.pending.extendleft(reversed(jobs))


class Publisher(threading.Thread):
    """One connection and confirm channel, publishing what the pool's queue holds."""

    def __init__(
        self,
        link: _amqp.Link,
        pool: Publishers,
        stopping: threading.Event,
        reconnect_max_delay: float,
        window: int,
    ) -> None:
        super().__init__(name=link.name.replace(" ", "-"), daemon=True)
        self._link = link
        self._pool = pool
        self._stopping = stopping
        self._max_delay = reconnect_max_delay
        self._window = window
        self.book: ConfirmBook[_Job] = ConfirmBook()  # this connection's unanswered publishes
        self._returned: dict[str | None, ReturnedMessage] = {}  # unroutable, not yet answered
        self._connection: pika.BlockingConnection | None = None
        self._full = False  # the window is full and jobs wait: an answer ends the I/O turn
        self.answers = 0  # answer frames received (one may settle many publishes)

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

    def wake(self) -> bool:
        """Make the thread look at the queue (from any thread); False if it cannot be."""
        connection = self._connection
        if connection is None:
            return False
        try:
            connection.add_callback_threadsafe(_nothing)
        except _amqp.BROKER_ERRORS:
            return False
        return True

    def _serve(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        impl = channel._impl
        impl.add_on_return_callback(self._on_return)
        # No Confirm.SelectOk awaited: the declarations' answers come after it, in order.
        impl.confirm_delivery(self._on_answer)
        self._pool.declare(channel)  # a publish never waits for another connection's
        self._link.serving()
        self._connection = connection
        self._pool.joined(self)
        try:
            while not self._stopping.is_set():
                self._pool.looked(self)
                self._fill(channel)
                connection.process_data_events(time_limit=IDLE_SECONDS)
                if channel.is_closed:  # closed by RabbitMQ (a channel error)
                    raise channel._closing_reason or pika.exceptions.ChannelClosed(
                        0, "the publishing channel closed"
                    )
            self._finish(connection)
        except pika.exceptions.AMQPChannelError as exc:
            self._fail_unanswered(exc)  # as a publish that meets a channel error
            raise  # start over on a new connection
        finally:
            self._connection = None
            self._returned.clear()
            self._pool.left(self, self.book.drain())

    def _fill(self, channel: BlockingChannel) -> None:
        """Send what the pool's queue holds, up to the window."""
        pending, book = self._pool.pending, self.book
        while pending and len(book) < self._window:
            try:
                job = pending.popleft()
            except IndexError:  # another thread took it
                break
            self._send(channel, job)
        self._full = bool(pending) and len(book) >= self._window

    def _send(self, channel: BlockingChannel, job: _Job) -> None:
        fut = job.fut
        if not fut.running() and not fut.set_running_or_notify_cancel():
            return  # cancelled before it was sent
        try:
            job.run(channel)
        except pika.exceptions.AMQPConnectionError:
            self._pool.requeue([job])
            raise
        except pika.exceptions.AMQPChannelError as exc:
            fut.set_exception(exc)
            raise  # the channel may be closed: start over on a new connection
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
            fut.set_exception(exc)
        else:
            if job.confirmed:
                self.book.sent(job)
            else:
                fut.set_result(None)

    def _on_answer(self, frame: pika.frame.Method[Any]) -> None:
        """RabbitMQ's ``basic.ack`` or ``basic.nack`` (called by pika's I/O loop)."""
        method = frame.method
        self.answers += 1
        nacked = isinstance(method, pika.spec.Basic.Nack)
        for job in self.book.settle(method.delivery_tag, multiple=method.multiple):
            returned = self._returned.pop(job.message_id, None) if self._returned else None
            if nacked:
                job.fut.set_exception(pika.exceptions.NackError([returned] if returned else []))
            elif returned is not None:  # its queue is gone: the next publish declares it
                self._pool.undeclared(job.queue)
                job.fut.set_exception(pika.exceptions.UnroutableError([returned]))
            else:
                job.fut.set_result(None)
        if self._full and self._connection is not None:
            self._full = False
            self._connection.call_later(0, _nothing)  # ends the I/O turn: room to send more

    def _on_return(
        self,
        _channel: object,
        method: pika.spec.Basic.Return,
        properties: pika.spec.BasicProperties,
        body: bytes,
    ) -> None:
        """A mandatory message no queue took; its answer (an ack) follows."""
        self._returned[properties.message_id] = ReturnedMessage(method, properties, body)

    def _fail_unanswered(self, exc: BaseException) -> None:
        for job in self.book.drain():
            job.fut.set_exception(exc)

    def _finish(self, connection: pika.BlockingConnection) -> None:
        """Stopping: wait a little for the answers to what was sent."""
        deadline = time.monotonic() + STOP_SECONDS
        while len(self.book) and time.monotonic() < deadline:
            connection.process_data_events(time_limit=0.05)


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
