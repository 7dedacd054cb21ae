"""The worker runtime: consume task messages, run handlers, report, ack.

Threads, as pika requires (one connection per thread):

* the **consumer** thread (``Worker.run``) owns one connection: it receives task and
  control messages and is the only thread that acks; handler threads ask it to with
  ``add_callback_threadsafe``. It keeps pumping while handlers run, so heartbeats flow
  even during long CPU-bound handlers;
* the **publisher** thread (:class:`StatusPublisher`) owns another connection and sends
  status messages with publisher confirms;
* a bounded pool of **handler** threads runs the handlers (async handlers get their own
  event loop in their thread).

A task's delivery is acked only after its terminal status message was confirmed by the
broker, so a worker that dies mid-task leaves the message to be redelivered: a new attempt.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from asynctask_worker import outcome, topology
from asynctask_worker.app import App
from asynctask_worker.context import TaskContext
from asynctask_worker.messages import (
    ControlMessage,
    MalformedMessage,
    Phase,
    TaskMessage,
    decode,
)
from asynctask_worker.publishing import StatusPublisher
from asynctask_worker.settings import WorkerSettings

log = logging.getLogger("asynctask.worker")


@dataclass
class _Running:
    ctx: TaskContext
    future: Future[None]


class Worker:
    """Serves an :class:`App`'s handlers from RabbitMQ until stopped (SIGTERM/SIGINT)."""

    def __init__(self, app: App, settings: WorkerSettings | None = None) -> None:
        self.app = app
        self.settings = settings or WorkerSettings()
        unknown = set(self.settings.queues) - set(app.tasks)
        if unknown:
            raise ValueError(f"no handler for queue(s) {sorted(unknown)}; the app has "
                             f"{app.queues}")
        self.queues = self.settings.queues or app.queues
        if not self.queues:
            raise ValueError("the app has no tasks: register one with @app.task(queue)")
        self._pool = ThreadPoolExecutor(self.settings.concurrency,
                                        thread_name_prefix="asynctask-handler")
        self._publisher = StatusPublisher(
            self.settings.amqp_url, worker_id=self.settings.worker_id,
            progress_interval=self.settings.progress_interval_seconds,
            heartbeat=self.settings.heartbeat_seconds,
            reconnect_max_delay=self.settings.reconnect_max_delay_seconds)
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connection: pika.BlockingConnection | None = None
        self._channel: BlockingChannel | None = None
        self._consumer_tags: list[str] = []
        self.ready = threading.Event()

    # lifecycle --------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, frame: self.stop())

    def stop(self) -> None:
        """Stop taking tasks; running ones get the grace period to finish."""
        if not self._stopping.is_set():
            log.info("stopping: no new tasks; %d running", len(self._running))
        self._stopping.set()

    def run(self) -> None:
        self._publisher.start()
        delay = 0.5
        try:
            while not self._stopping.is_set():
                try:
                    self._connect()
                    delay = 0.5
                    self._consume()
                except pika.exceptions.AMQPError as exc:
                    if self._stopping.is_set():
                        break
                    log.warning("lost the broker (%s); reconnecting in %.1fs", exc, delay)
                    self._close()
                    time.sleep(delay)
                    delay = min(delay * 2, self.settings.reconnect_max_delay_seconds)
            self._drain()
        finally:
            self._close()
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._publisher.stop()
            self._publisher.join(timeout=10)
            log.info("worker stopped")

    def _connect(self) -> None:
        params = pika.URLParameters(self.settings.amqp_url)
        params.heartbeat = self.settings.heartbeat_seconds
        self._connection = pika.BlockingConnection(params)
        ch = self._channel = self._connection.channel()
        topology.declare_all(ch, self.queues)
        ch.basic_qos(prefetch_count=self.settings.effective_prefetch)
        self._consumer_tags = [
            ch.basic_consume(topology.task_queue_name(q), self._on_task) for q in self.queues]
        control = ch.queue_declare("", exclusive=True, auto_delete=True).method.queue
        ch.queue_bind(control, topology.CONTROL_EXCHANGE)
        ch.basic_consume(control, self._on_control, auto_ack=True)
        log.info("worker %s serving %s (concurrency %d)", self.settings.worker_id,
                 ", ".join(self.queues), self.settings.concurrency)
        self.ready.set()

    def _consume(self) -> None:
        assert self._connection is not None
        while not self._stopping.is_set():
            self._connection.process_data_events(time_limit=0.2)

    def _drain(self) -> None:
        """After stop(): cancel consumers, let running tasks finish, requeue the rest."""
        conn, ch = self._connection, self._channel
        if conn is None or ch is None or not conn.is_open:
            return
        try:
            for tag in self._consumer_tags:
                ch.basic_cancel(tag)
            deadline = time.monotonic() + self.settings.grace_period_seconds
            while self._running and time.monotonic() < deadline:
                conn.process_data_events(time_limit=0.2)
            with self._lock:
                left = list(self._running.values())
            for running in left:
                running.ctx._cancel("WorkerShutdown")
            if left:
                log.warning("%d task(s) still running after the grace period: requeued",
                            len(left))
                # Unacked deliveries go back to the queue when the channel closes.
        except pika.exceptions.AMQPError:
            pass

    def _close(self) -> None:
        conn, self._connection, self._channel = self._connection, None, None
        if conn is not None and conn.is_open:
            try:
                conn.close()
            except pika.exceptions.AMQPError:
                pass

    # consumer thread callbacks --------------------------------------------------------

    def _on_task(self, ch: BlockingChannel, method: Basic.Deliver,
                 props: BasicProperties, body: bytes) -> None:
        try:
            msg = decode(TaskMessage, body)
            definition = self.app.tasks[msg.queue]
        except (MalformedMessage, KeyError) as exc:
            log.error("dead-lettering an invalid task message %s: %s", props.message_id, exc)
            ch.basic_reject(method.delivery_tag, requeue=False)
            return
        # Each redelivery (a worker died holding the message) is a new attempt.
        headers: dict[str, Any] = props.headers or {}
        attempt = msg.attempt + int(headers.get("x-delivery-count", 0) or 0)
        connection = self._connection
        assert connection is not None

        def ack() -> None:
            if ch.is_open:
                ch.basic_ack(method.delivery_tag)

        def sink(percent: int, message: str | None) -> None:
            self._publisher.progress(msg.task, attempt, percent, message)

        ctx = TaskContext(msg.task, attempt, msg.queue, sink)
        with self._lock:
            future = self._pool.submit(self._execute, definition, msg, attempt, ctx,
                                       lambda: connection.add_callback_threadsafe(ack))
            self._running[msg.task.uid] = _Running(ctx, future)

    def _on_control(self, ch: BlockingChannel, method: Basic.Deliver,
                    props: BasicProperties, body: bytes) -> None:
        try:
            msg = decode(ControlMessage, body)
        except MalformedMessage as exc:
            log.error("ignoring an invalid control message: %s", exc)
            return
        with self._lock:
            running = self._running.get(msg.task.uid)
        if running is not None:
            reason = "TimedOut" if msg.action == "timeout" else (msg.reason or "Cancelled")
            log.info("task %s/%s: %s", msg.task.namespace, msg.task.name, reason)
            running.ctx._cancel(reason)

    # handler threads ------------------------------------------------------------------

    def _execute(self, definition: Any, msg: TaskMessage, attempt: int, ctx: TaskContext,
                 ack: Any) -> None:
        timer: threading.Timer | None = None
        try:
            self._publisher.send(msg.task, attempt, Phase.PROCESSING, progress=None,
                                 message="Processing").result()
            if msg.timeout_seconds:
                timer = threading.Timer(msg.timeout_seconds, ctx._cancel, ("TimedOut",))
                timer.daemon = True
                timer.start()
            try:
                request = definition.parse_request(msg.request)
                value = definition.call(request, ctx)
                result = (outcome.stopped(ctx.cancel_reason) if ctx.cancelled
                          else outcome.succeeded(value))
            except BaseException as exc:  # noqa: BLE001 - every failure becomes a status
                result = outcome.from_exception(exc, cancel_reason=ctx.cancel_reason)
            if ctx.cancel_reason == "WorkerShutdown":
                return  # not acked: the broker gives the task to another worker
            ctx.logger.info("task %s/%s attempt %d: %s", msg.task.namespace, msg.task.name,
                            attempt, result.phase.value)
            self._publisher.send(
                msg.task, attempt, result.phase, result=result.result, error=result.error,
                message=result.message, progress=100 if result.phase is Phase.SUCCEEDED else None,
            ).result()
            ack()
        except Exception:
            log.exception("task %s: could not report its outcome; left for redelivery",
                          msg.task.uid)
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._running.pop(msg.task.uid, None)
