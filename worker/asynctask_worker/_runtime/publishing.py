"""The worker's status publisher: one thread, one pika connection, publisher confirms.

Handler threads never touch pika. They hand messages to this thread and, for phase
changes, wait for the broker's confirm before the task's delivery is acked. Progress is
throttled here: at most one progress message per task per interval, the latest value wins.
An attempt's ``Processing`` is held for the start window (:mod:`.starts`), and any progress
with it: an attempt that ends within it sends only its end, which carries the start's time.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import pika

from asynctask_worker import amqp, topology
from asynctask_worker._runtime.starts import DEFAULT_START_REPORT_SECONDS, StartReports
from asynctask_worker.messages import CONTENT_TYPE, Phase, StatusMessage, TaskRef, encode

log = logging.getLogger("asynctask.worker.publishing")


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
        self._inbox: queue.Queue[_Item | None] = queue.Queue()
        self._streams: dict[tuple[str, int], _Stream] = {}
        self._starts: StartReports[tuple[str, int], _Item] = StartReports(start_report_seconds)
        self._stopping = threading.Event()
        self._channel: pika.adapters.blocking_connection.BlockingChannel | None = None

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
        self._inbox.put(item)
        return item.future

    def progress(self, task: TaskRef, attempt: int, percent: int, message: str | None) -> None:
        """Record progress; it is sent within the progress interval (latest value wins)."""
        self.send(task, attempt, Phase.PROCESSING, progress=percent, message=message)

    def stop(self) -> None:
        self._stopping.set()
        self._inbox.put(None)

    # the publisher thread -------------------------------------------------------------

    def run(self) -> None:
        try:
            amqp.run_connected(
                self._link,
                self._serve,
                max_delay=self._max_delay,
                keep_going=lambda: not self._stopping.is_set() or not self._inbox.empty(),
                on_lost=self._lost,
            )
        finally:
            self._lost()
            self._link.close()

    def _lost(self) -> None:
        self._channel = None

    def _serve(self, connection: pika.BlockingConnection) -> None:
        """Publish until stopped with nothing left to send (or the connection fails)."""
        if self._channel is None or not self._channel.is_open:
            self._channel = connection.channel()
            self._channel.confirm_delivery()
            topology.declare_dead_letter(self._channel)
            topology.declare_status_queue(self._channel)
        self._link.serving()
        while True:
            wait = min(self._interval, 0.2)
            start_due = self._starts.next_due_in()
            try:
                item = self._inbox.get(timeout=wait if start_due is None else min(wait, start_due))
            except queue.Empty:
                item = None
            if item is None and self._stopping.is_set() and self._inbox.empty():
                self._flush_due(force=True)
                return
            if item is not None:
                self._handle(item)
            self._flush_due()
            connection.process_data_events(0)

    def _handle(self, item: _Item) -> None:
        msg = item.message
        key = (msg.task.uid, msg.attempt)
        stream = self._streams.setdefault(key, _Stream())
        if msg.phase is Phase.PROCESSING and msg.progress is not None:
            # A progress tick: coalesce, keep the newest (held with a held start: both go
            # when its window ends, the start first, or neither if the attempt ends first).
            if stream.done:
                item.future.set_result(None)
                return
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
                item.message = msg = msg.model_copy(update={"started_at": start.message.at})
        self._send(stream, key, item)

    def _send(self, stream: _Stream, key: tuple[str, int], item: _Item) -> None:
        msg = item.message
        try:
            self._publish(stream, msg)
        except amqp.BROKER_ERRORS:
            self._inbox.put(item)  # retried after the reconnect
            raise
        except Exception as exc:  # not the broker's fault: retrying would not help
            log.exception("could not publish a status message for task %s", msg.task.uid)
            item.future.set_exception(exc)
            return
        item.future.set_result(None)
        if stream.done:
            del self._streams[key]

    def _flush_due(self, force: bool = False) -> None:
        for key, start in self._starts.due(force):
            self._send(self._streams.setdefault(key, _Stream()), key, start)
        now = time.monotonic()
        for key, stream in list(self._streams.items()):
            msg = stream.pending
            if msg is None or (not force and now - stream.last_progress_at < self._interval):
                continue
            if key in self._starts:
                continue  # its start is held: it goes after the start, or not at all
            stream.pending = None
            stream.last_progress_at = now
            try:
                self._publish(stream, msg)
            except amqp.BROKER_ERRORS:
                if stream.pending is None and not stream.done:
                    stream.pending = msg  # sent after the reconnect
                raise

    def _publish(self, stream: _Stream, msg: StatusMessage) -> None:
        assert self._channel is not None
        msg = msg.model_copy(update={"seq": stream.seq})
        stream.seq += 1
        self._channel.basic_publish(
            exchange="",
            routing_key=topology.STATUS_QUEUE,
            body=encode(msg),
            properties=pika.BasicProperties(
                content_type=CONTENT_TYPE,
                delivery_mode=pika.DeliveryMode.Persistent,
                message_id=msg.message_id,
                type="status",
            ),
            mandatory=True,
        )
