"""One publisher thread of the pool (:mod:`broker.publishers`): a connection and a confirm
channel with up to ``window`` publishes in flight, settled from RabbitMQ's answers
(:mod:`asynctask_worker.confirms`).

It sleeps in pika's I/O loop. A publish queued while it sleeps wakes it (pika's
``add_callback_threadsafe``); one queued while it is busy (publishes in flight, or just
sent) is taken at its next look, at most :data:`LINGER_SECONDS` later, without a wake-up.
Publishes go out on the channel underneath pika's ``BlockingChannel`` (``_impl``), which
would wait for each confirm before sending the next; declarations and the queue-depth
declare stay blocking calls, made between two turns of the I/O loop (never from pika's
callbacks).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pika
import pika.exceptions
import pika.frame
import pika.spec
from pika.adapters.blocking_connection import BlockingChannel, ReturnedMessage

from asynctask_worker import amqp as _amqp
from asynctask_worker.confirms import ConfirmBook

if TYPE_CHECKING:
    from asynctask_operator.broker.publishers import Publishers

#: How long a publisher sleeps in pika's I/O loop (heartbeats are answered meanwhile)
#: before it looks at the queue without being woken: a safety net only.
IDLE_SECONDS = 1.0
#: How soon a busy publisher (publishes in flight, or just sent) looks at the queue again
#: by itself: meanwhile a publish queued needs no wake-up (a write to the thread's pipe
#: from the event loop, and pika's turn for it: in a burst's profile they cost more than
#: the publish itself). At most this much is added to a publish's time.
LINGER_SECONDS = 0.005
#: Publishes one connection keeps in flight at most (unanswered by RabbitMQ).
WINDOW = 256
#: How long a stopping publisher waits for the answers to what it sent.
STOP_SECONDS = 2.0


@dataclass(eq=False)
class Job:
    """A publish (``confirmed``: settled by RabbitMQ's answer) or a blocking call."""

    fut: Future[None]
    run: Callable[[BlockingChannel], None]
    confirmed: bool = True
    message_id: str | None = None  # a returned (unroutable) message is matched by it
    queue: str | None = None  # its task queue: declared again once a message is returned


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
        self.book: ConfirmBook[Job] = ConfirmBook()  # this connection's unanswered publishes
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
        return _amqp.wake(self._connection)

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
                busy = self._fill(channel) or len(self.book) > 0
                linger = busy and self._pool.lingers(self)
                connection.process_data_events(
                    time_limit=LINGER_SECONDS if linger else IDLE_SECONDS
                )
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

    def _fill(self, channel: BlockingChannel) -> bool:
        """Send what the pool's queue holds, up to the window; False if it held none."""
        pending, book = self._pool.pending, self.book
        took = False
        while pending and len(book) < self._window:
            try:
                job = pending.popleft()
            except IndexError:  # another thread took it
                break
            took = True
            self._send(channel, job)
        self._full = bool(pending) and len(book) >= self._window
        return took

    def _send(self, channel: BlockingChannel, job: Job) -> None:
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
            self._connection.call_later(0, lambda: None)  # ends the I/O turn: room to send more

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
