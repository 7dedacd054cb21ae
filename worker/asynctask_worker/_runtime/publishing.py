"""The worker's status publisher: one thread, one pika connection, publisher confirms.

Handler threads never touch pika. They hand messages to this thread and, for phase
changes, wait for the broker's confirm before the task's delivery is acked. Progress is
throttled here: at most one progress message per task per interval, the latest value wins.
An attempt's ``Processing`` is held for the start window (:mod:`.starts`), and any progress
with it: an attempt that ends within it sends only its end, which carries the start's time.

Publishes are pipelined: the thread sends whatever it was handed since its last turn
without waiting for the broker, and settles them from the broker's confirms as they
arrive (one ``basic.ack`` with ``multiple`` may confirm many: :mod:`asynctask_worker.confirms`). It
sleeps in the connection's I/O loop, so confirms are handled the moment they arrive;
a sender wakes it only when it sleeps (one wake-up for a turn's messages, not one each).
A message keeps its sequence number once sent: if the connection is lost, or the broker
refuses (nacks) or returns one, every message not confirmed yet is published again, in
the order first sent, on the next connection (at-least-once; the operator drops what it
already has by ``seq``). Within an attempt, messages go out in ``seq`` order.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pika
import pika.exceptions
from pika.spec import Basic, BasicProperties

from asynctask_worker import amqp, topology
from asynctask_worker._runtime.starts import DEFAULT_START_REPORT_SECONDS, StartReports
from asynctask_worker.confirms import ConfirmBook
from asynctask_worker.messages import CONTENT_TYPE, Phase, StatusMessage, TaskRef, encode

log = logging.getLogger("asynctask.worker.publishing")

Key = tuple[str, int]  # (task uid, attempt)


@dataclass
class _Stream:
    """Per task attempt: the next sequence number and the progress waiting to be sent."""

    seq: int = 0
    pending: StatusMessage | None = None
    last_progress_at: float = 0.0
    done: bool = False


@dataclass
class _Item:
    message: StatusMessage
    future: Future[None] = field(default_factory=Future)


@dataclass
class _Sent:
    """A message with its sequence number, sent (or to be sent again) until confirmed."""

    order: int  # when it was first sent: re-sent in this order
    key: Key
    message: StatusMessage
    body: bytes
    item: _Item | None  # None for progress: nobody waits for its confirm
    last: bool  # the attempt's terminal message: its stream ends when it is confirmed


class StatusPublisher(threading.Thread):
    def __init__(
        self,
        amqp_url: str,
        *,
        worker_id: str,
        progress_interval: float = 0.5,
        heartbeat: int = 30,
        reconnect_max_delay: float = 30.0,
        start_report_seconds: float = DEFAULT_START_REPORT_SECONDS,
    ) -> None:
        super().__init__(name="asynctask-status-publisher", daemon=True)
        self._link = amqp.Link(
            amqp.parameters(amqp_url, heartbeat=heartbeat),
            name=f"status publisher {worker_id}",
            log=log,
        )
        self._worker_id = worker_id
        self._interval = progress_interval
        self._max_delay = reconnect_max_delay
        self._lock = threading.Lock()
        self._inbox: deque[_Item] = deque()  # guarded by _lock
        self._asleep = False  # guarded by _lock: the thread waits in its I/O loop
        self._streams: dict[Key, _Stream] = {}
        self._starts: StartReports[Key, _Item] = StartReports(start_report_seconds)
        self._stopping = threading.Event()
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None
        self._in_flight: ConfirmBook[_Sent] = ConfirmBook()
        self._resend: deque[_Sent] = deque()  # not confirmed on a lost channel, oldest first
        self._refused: list[_Sent] = []  # nacked or returned: the channel is reset
        self._returned: set[str] = set()  # message ids the broker returned (unroutable)
        self._order = itertools.count()
        #: The channel failed during this turn: the rest of the turn's messages are queued
        #: for the next channel (in order), then the error is raised.
        self._broken: BaseException | None = None

    @property
    def connections(self) -> int:
        """Connections made so far (more than one means it reconnected)."""
        return self._link.epoch

    # called from any thread -----------------------------------------------------------

    def send(self, task: TaskRef, attempt: int, phase: Phase, **fields: Any) -> Future[None]:
        """Queue a status message; the future resolves when the broker confirmed it."""
        msg = StatusMessage(
            task=task, attempt=attempt, phase=phase, worker=self._worker_id, **fields
        )
        item = _Item(msg)
        with self._lock:
            self._inbox.append(item)
            wake, self._asleep = self._asleep, False
        if wake:
            self._wake()
        return item.future

    def progress(self, task: TaskRef, attempt: int, percent: int, message: str | None) -> None:
        """Record progress; it is sent within the progress interval (latest value wins)."""
        self.send(task, attempt, Phase.PROCESSING, progress=percent, message=message)

    def stop(self) -> None:
        self._stopping.set()
        self._wake()

    def _wake(self) -> None:
        amqp.wake(self._link.connection)

    # the publisher thread -------------------------------------------------------------

    def run(self) -> None:
        try:
            amqp.run_connected(
                self._link,
                self._serve,
                max_delay=self._max_delay,
                keep_going=lambda: not self._stopping.is_set() or self._unsent(),
                on_lost=self._lost,
            )
        finally:
            self._lost()
            self._link.close()

    def _unsent(self) -> bool:
        with self._lock:
            return bool(self._inbox or self._resend)

    def _lost(self) -> None:
        """The channel is gone: what it left unconfirmed is sent again on the next one."""
        self._channel = None
        self._broken = None
        again = [*self._refused, *self._in_flight.drain(), *self._resend]
        self._refused.clear()
        self._returned.clear()
        self._resend = deque(sorted(again, key=lambda sent: sent.order))

    def _open_channel(self, connection: pika.BlockingConnection) -> None:
        channel = connection.channel()
        topology.declare_dead_letter(channel)
        topology.declare_status_queue(channel)
        selected: list[bool] = []
        # Confirms settled by our own callback (pika's BlockingChannel waits for each).
        channel._impl.confirm_delivery(
            ack_nack_callback=self._on_confirm, callback=lambda _frame: selected.append(True)
        )
        channel._impl.add_on_return_callback(self._on_return)
        deadline = time.monotonic() + 30
        while not selected:
            if time.monotonic() > deadline:
                raise pika.exceptions.AMQPChannelError("no Confirm.SelectOk within 30 s")
            connection.process_data_events(time_limit=0.1)
        self._channel = channel

    def _serve(self, connection: pika.BlockingConnection) -> None:
        """Publish until stopped with nothing left to send or confirm (or the connection
        fails)."""
        if self._channel is None or not self._channel.is_open:
            self._open_channel(connection)
        self._link.serving()
        while True:
            while self._resend:
                self._publish(self._resend[0])
                self._resend.popleft()
            with self._lock:
                items = list(self._inbox)
                self._inbox.clear()
            for item in items:
                self._handle(item)
            stopping = self._stopping.is_set()
            self._flush_due(force=stopping)
            if self._broken is not None:
                broken, self._broken = self._broken, None
                raise broken
            if self._refused:
                raise pika.exceptions.AMQPChannelError(
                    f"the broker refused {len(self._refused)} status message(s): sent again"
                )
            if stopping and not self._in_flight and not self._unsent():
                return
            start_due = self._starts.next_due_in()
            wait = min(self._interval, 0.2)
            wait = wait if start_due is None else min(wait, start_due)
            with self._lock:
                self._asleep = not self._inbox
            try:
                connection.process_data_events(time_limit=wait if self._asleep else 0)
            finally:
                with self._lock:
                    self._asleep = False

    def _handle(self, item: _Item) -> None:
        msg = item.message
        key = (msg.task.uid, msg.attempt)
        stream = self._streams.setdefault(key, _Stream())
        if msg.phase is Phase.PROCESSING and msg.progress is not None:
            # A progress tick: coalesce, keep the newest (held with a held start: both go
            # when its window ends, the start first, or neither if the attempt ends first).
            if not stream.done:
                stream.pending = msg
            item.future.set_result(None)
            return
        if msg.phase is Phase.PROCESSING and not stream.done and self._starts.hold(key, item):
            return  # sent when its window ends, unless the attempt ends first
        if msg.phase.terminal:
            stream.pending = None  # the terminal message carries the final word
            stream.done = True
            start = self._starts.take(key)
            if start is not None:  # ended within the start window: one message, not two
                start.future.set_result(None)
                item.message = msg.model_copy(update={"started_at": start.message.at})
        self._send(stream, key, item.message, item)

    def _send(
        self, stream: _Stream, key: Key, msg: StatusMessage, item: _Item | None = None
    ) -> None:
        """Give ``msg`` the stream's next sequence number and publish it."""
        try:
            msg = msg.model_copy(update={"seq": stream.seq})
            body = encode(msg)
        except Exception as exc:  # not the broker's fault: retrying would not help
            log.exception("could not publish a status message for task %s", msg.task.uid)
            if item is not None:
                item.future.set_exception(exc)
            return
        stream.seq += 1
        sent = _Sent(next(self._order), key, msg, body, item, stream.done and item is not None)
        if self._broken is None:
            try:
                self._publish(sent)
                return
            except amqp.BROKER_ERRORS as exc:
                self._broken = exc  # raised once the turn's messages are all in order
        self._resend.append(sent)  # sent after the reconnect

    def _flush_due(self, force: bool = False) -> None:
        for key, start in self._starts.due(force):
            self._send(self._streams.setdefault(key, _Stream()), key, start.message, start)
        now = time.monotonic()
        for key, stream in list(self._streams.items()):
            msg = stream.pending
            if msg is None or (not force and now - stream.last_progress_at < self._interval):
                continue
            if key in self._starts:
                continue  # its start is held: it goes after the start, or not at all
            stream.pending = None
            stream.last_progress_at = now
            self._send(stream, key, msg)

    def _publish(self, sent: _Sent) -> None:
        """Send one message (confirmed later, by :meth:`_on_confirm`)."""
        channel = self._channel
        if channel is None or not channel.is_open:
            raise pika.exceptions.ChannelWrongStateError("the status channel is closed")
        msg = sent.message
        channel._impl.basic_publish(
            exchange="",
            routing_key=topology.STATUS_QUEUE,
            body=sent.body,
            properties=BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=pika.DeliveryMode.Persistent.value,
                message_id=msg.message_id,
                type="status",
            ),
            mandatory=True,
        )
        self._in_flight.sent(sent)

    # the broker's answers (in the I/O loop, on this thread) ---------------------------

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        settled = self._in_flight.settle(method.delivery_tag, multiple=bool(method.multiple))
        if isinstance(method, Basic.Nack):
            log.warning("the broker refused %d status message(s): sent again", len(settled))
            self._refused.extend(settled)
            return
        for sent in settled:
            if self._returned and sent.message.message_id in self._returned:
                self._refused.append(sent)
                continue
            if sent.last and self._streams.get(sent.key) is not None:
                del self._streams[sent.key]
            if sent.item is not None:
                sent.item.future.set_result(None)

    def _on_return(
        self, _channel: Any, _method: Any, properties: BasicProperties, _body: bytes
    ) -> None:
        log.warning("the broker returned status message %s: sent again", properties.message_id)
        if properties.message_id:
            self._returned.add(properties.message_id)
