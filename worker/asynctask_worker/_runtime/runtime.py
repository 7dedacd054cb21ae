"""The worker runtime: RabbitMQ in, the dispatcher in the middle, status messages out.

Threads, as pika requires (one connection per thread):

* the **consumer** thread (``Worker.run``, the main thread under the CLI) owns one
  connection. It follows the control stream (:mod:`asynctask_worker._runtime.revocation`),
  receives task messages and is the only thread that acks; other threads ask it to, and
  it carries out the asks of a turn together, after one wake-up (:mod:`.acks`). It pumps
  the connection every 0.1 s whatever the handlers do, so heartbeats flow even during
  long CPU-bound handlers;
* the **publisher** thread (:class:`StatusPublisher`) owns another connection and sends
  status messages with publisher confirms, several in flight at once;
* the **supervisor** thread (:class:`Dispatcher`) enforces time limits and grace periods
  and starts attempts within the concurrency limit (in thread pool mode the thread that
  brings a delivery or frees a slot starts them; the supervisor's tick is the fallback);
* one thread per running handler, reused from one attempt to the next (thread pool mode),
  or one child process plus a thread minding its pipe (process pool mode).

A delivery is acked only after its terminal status was confirmed by the broker, so a
worker that dies mid-task leaves the message to be redelivered: a new attempt
(``TaskMessage.attempt`` + the quorum queue's ``x-delivery-count``).

When the connection drops, running handlers go on; the worker reconnects with
exponential backoff. The broker redelivers what was unacked: a redelivery of a task
still running here is adopted by the running attempt (it is acked when that attempt
ends), one of a task that ended here meanwhile is acked at once, so a broker restart
does not run a task twice in one worker. Deliveries not started yet are dropped: the
broker has them again.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import pika
import pika.exceptions
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from asynctask_worker import amqp, topology
from asynctask_worker._runtime import processes
from asynctask_worker._runtime.dispatch import Dispatcher
from asynctask_worker._runtime.publishing import StatusPublisher
from asynctask_worker._runtime.refusals import Refusals
from asynctask_worker._runtime.revocation import ControlLog, RevokedSet
from asynctask_worker.acks import AckBook
from asynctask_worker.app import App
from asynctask_worker.messages import TaskMessage
from asynctask_worker.metrics import MetricsServer, WorkerMetrics
from asynctask_worker.settings import WorkerSettings

log = logging.getLogger("asynctask.worker")

_PUMP_SECONDS = 0.1
_BROKER_ERRORS = amqp.BROKER_ERRORS


class _AmqpDelivery:
    """A task delivery on one connection; settling it is a no-op once that connection died."""

    __slots__ = ("attempt", "connection_epoch", "message", "tag", "worker")

    def __init__(
        self, worker: Worker, connection_epoch: int, tag: int, message: TaskMessage, attempt: int
    ) -> None:
        self.worker = worker
        self.connection_epoch = connection_epoch
        self.tag = tag
        self.message = message
        self.attempt = attempt

    def ack(self) -> None:
        self.worker._settle(self.connection_epoch, self.tag, ack=True)

    def requeue(self) -> None:
        self.worker._settle(self.connection_epoch, self.tag, ack=False)


class Worker:
    """Serves an :class:`App`'s handlers from RabbitMQ until stopped (SIGTERM/SIGINT)."""

    def __init__(
        self,
        app: App,
        settings: WorkerSettings | None = None,
        *,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.app = app
        self.settings = settings = settings or WorkerSettings()
        unknown = set(settings.queues) - set(app.tasks)
        if unknown:
            raise ValueError(f"no handler for queue(s) {sorted(unknown)}; the app has {app.queues}")
        self.queues = settings.queues or app.queues
        if not self.queues:
            raise ValueError("the app has no tasks: register one with @app.task(queue)")
        if settings.pool == "process":
            _check_process_pool(app, self.queues)
        self.metrics = metrics or WorkerMetrics()
        self._publisher = StatusPublisher(
            settings.amqp_url,
            worker_id=settings.worker_id,
            progress_interval=settings.progress_interval_seconds,
            heartbeat=settings.heartbeat_seconds,
            reconnect_max_delay=settings.reconnect_max_delay_seconds,
            start_report_seconds=settings.start_report_seconds,
        )
        self.dispatcher = Dispatcher(
            app,
            self._publisher,
            concurrency=settings.concurrency,
            pool=settings.pool,
            cancel_grace_seconds=settings.cancel_grace_seconds,
            revoked=RevokedSet(settings.revoked_capacity, settings.control_history_seconds),
            metrics=self.metrics,
            log_format=settings.log_format,
            log_level=settings.log_level,
            payload_retry_seconds=settings.payload_retry_seconds,
        )
        self._control = ControlLog(
            self.dispatcher.control,
            worker_id=settings.worker_id,
            history_seconds=settings.control_history_seconds,
        )
        self._link = amqp.Link(
            amqp.parameters(settings.amqp_url, heartbeat=settings.heartbeat_seconds),
            name=f"worker {settings.worker_id}",
            log=log,
        )
        self._tasks_channel: BlockingChannel | None = None
        self._consumer_tags: list[str] = []
        self._consumer_queues: dict[str, str] = {}
        self._refusals = Refusals(app, self.metrics, worker_id=settings.worker_id)
        #: Acks and requeues asked for by other threads, carried out in one turn.
        self._settle_lock = threading.Lock()
        self._settles: list[tuple[int, int, bool]] = []
        self._settle_asked = False
        self._acks = AckBook()  # the task channel's deliveries not settled yet
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._metrics_server: MetricsServer | None = None
        #: Set while consuming task queues (cleared while reconnecting).
        self.ready = threading.Event()

    @property
    def connections(self) -> int:
        """Connections the consumer made so far (more than one: it reconnected)."""
        return self._link.epoch

    @property
    def _connection(self) -> pika.BlockingConnection | None:
        return self._link.connection

    @property
    def publisher_connections(self) -> int:
        return self._publisher.connections

    @property
    def metrics_port(self) -> int | None:
        return None if self._metrics_server is None else self._metrics_server.port

    # lifecycle ----------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: stop gracefully; a second one: stop without waiting."""

        def handle(signum: int, frame: FrameType | None) -> None:
            self.stop(now=self._stopping.is_set())

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handle)

    def stop(self, now: bool = False) -> None:
        """Stop taking tasks; running ones get the grace period to finish (none if ``now``)."""
        if now:
            self._hurry.set()
        self._stopping.set()

    def run(self) -> None:
        settings = self.settings
        if settings.metrics_port is not None:
            self._metrics_server = self.metrics.serve(
                settings.metrics_port, settings.metrics_address
            )
            log.info(
                "metrics on http://%s:%d/metrics",
                settings.metrics_address,
                self._metrics_server.port,
            )
        self._publisher.start()
        self.dispatcher.start()
        try:
            amqp.run_connected(
                self._link,
                self._serve,
                max_delay=settings.reconnect_max_delay_seconds,
                keep_going=lambda: not self._stopping.is_set(),
                on_lost=self._lost,
                wait=self._stopping.wait,
            )
            self._shutdown()
        finally:
            self._close()
            self.dispatcher.stop()
            self._publisher.stop()
            self._publisher.join(10)
            if self._metrics_server is not None:
                self._metrics_server.close()
            log.info("worker stopped")

    # the connection -----------------------------------------------------------------------

    def _serve(self, conn: pika.BlockingConnection) -> None:
        """Set up a fresh connection, then consume until asked to stop."""
        settings = self.settings
        self.metrics.connections.inc()
        setup = conn.channel()
        topology.declare_all(setup, self.queues)
        setup.close()
        # Catch up with the control stream before taking any task: a task cancelled while
        # queued must be known as revoked when it is delivered.
        self._control.subscribe(conn)
        deadline = time.monotonic() + settings.control_sync_timeout_seconds
        self._pump_until(
            lambda: self._control.synced or self._stopping.is_set() or time.monotonic() > deadline
        )
        if self._stopping.is_set():
            return
        if not self._control.synced:
            self._control.sync_timed_out()
        ch = self._tasks_channel = conn.channel()
        self._acks.reset()
        with self._settle_lock:
            self._settles.clear()
            self._settle_asked = False
        ch.basic_qos(prefetch_count=settings.effective_prefetch)
        self._consumer_queues = {
            ch.basic_consume(topology.task_queue_name(q), self._on_task): topology.task_queue_name(
                q
            )
            for q in self.queues
        }
        self._consumer_tags = list(self._consumer_queues)
        self._set_ready(True)
        self._link.serving()
        log.info(
            "worker %s serving %s (concurrency %d, %s pool)",
            settings.worker_id,
            ", ".join(self.queues),
            settings.concurrency,
            settings.pool,
        )
        self._pump_until(self._stopping.is_set)

    def _pump_until(self, done: Callable[[], bool]) -> None:
        while not done():
            assert self._connection is not None
            self._connection.process_data_events(time_limit=_PUMP_SECONDS)

    def _lost(self) -> None:
        """The connection failed: its deliveries are void; the broker will redeliver."""
        self._set_ready(False)
        self._close()
        dropped = self.dispatcher.forget_pending()
        if dropped:
            log.info("%d task(s) not started yet will be redelivered", dropped)

    def _set_ready(self, ready: bool) -> None:
        """Consuming task queues or not: the ``ready`` event and the readiness gauge."""
        if ready:
            self.ready.set()
        else:
            self.ready.clear()
        self.metrics.ready.set(int(ready))

    def _close(self) -> None:
        self._tasks_channel = None
        self._refusals.forget()
        self._link.close()

    def _settle(self, epoch: int, tag: int, *, ack: bool) -> None:
        """Ack or requeue a delivery, from any thread, on the consumer thread: asks are
        collected and carried out together in its next turn (:mod:`.acks`)."""
        conn = self._connection
        if conn is None or epoch != self._link.epoch:
            return  # that connection is gone: the broker redelivers the message
        with self._settle_lock:
            self._settles.append((epoch, tag, ack))
            wake, self._settle_asked = not self._settle_asked, True
        if wake:
            with contextlib.suppress(*_BROKER_ERRORS):
                conn.add_callback_threadsafe(self._settle_turn)

    def _settle_turn(self) -> None:
        """The acks and requeues asked for since the last turn (consumer thread)."""
        with self._settle_lock:
            asked, self._settles = self._settles, []
            self._settle_asked = False
        ch = self._tasks_channel
        epoch = self._link.epoch
        if ch is None or not ch.is_open:
            return
        acks = self._acks.plan(tag for e, tag, ack in asked if ack and e == epoch)
        if acks.up_to is not None:
            ch._impl.basic_ack(delivery_tag=acks.up_to, multiple=True)
        for tag in acks.singles:
            ch._impl.basic_ack(delivery_tag=tag)
        for e, tag, ack in asked:
            if not ack and e == epoch and self._acks.settled(tag):
                ch._impl.basic_nack(delivery_tag=tag, requeue=True)

    # consumer callbacks -------------------------------------------------------------------

    def _on_task(
        self, ch: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        queue = self._consumer_queues.get(method.consumer_tag or "", method.routing_key or "")
        assert self._connection is not None
        msg = self._refusals.accept(self._connection, ch, method, props, body, queue=queue)
        if msg is None:
            return  # dead-lettered, saying why
        # Each redelivery (a worker died holding the message) is a new attempt.
        count = (props.headers or {}).get("x-delivery-count")
        attempt = msg.attempt + (count if isinstance(count, int) and count > 0 else 0)
        self._acks.delivered(method.delivery_tag)
        self.dispatcher.submit(
            _AmqpDelivery(self, self._link.epoch, method.delivery_tag, msg, attempt)
        )

    # shutdown -----------------------------------------------------------------------------

    def _shutdown(self) -> None:
        """Stop consuming, let running tasks finish within the grace period, requeue the rest."""
        self._set_ready(False)
        grace = 0.0 if self._hurry.is_set() else self.settings.grace_period_seconds
        log.info(
            "stopping: no new tasks; %d running; grace period %.1fs", self.dispatcher.active, grace
        )
        ch = self._tasks_channel
        if ch is not None and ch.is_open:
            try:
                for tag in self._consumer_tags:
                    ch.basic_cancel(tag)  # pika nacks what it buffered for these consumers
            except _BROKER_ERRORS:
                self._lost()
        requeued = self.dispatcher.close_intake()
        if requeued:
            log.info("%d task(s) not started yet: requeued", requeued)
        deadline = time.monotonic() + grace
        self._wait(lambda: self.dispatcher.active == 0, deadline)
        released = self.dispatcher.release_running()
        if released:
            log.warning("%d task(s) still running after the grace period: requeued", released)
        # Terminal statuses on their way: let them be confirmed and their deliveries acked.
        self._wait(lambda: self.dispatcher.finishing == 0, time.monotonic() + 10)
        self._wait(lambda: False, time.monotonic() + 0.3)  # run the acks/nacks scheduled

    def _wait(self, done: Callable[[], bool], deadline: float) -> None:
        """Pump (or, without a connection, sleep) until ``done`` or the deadline."""
        while not done() and time.monotonic() < deadline:
            if self._hurry.is_set() and not done():
                deadline = min(deadline, time.monotonic() + 0.3)
            conn = self._connection
            if conn is None or not conn.is_open:
                time.sleep(_PUMP_SECONDS)
                continue
            try:
                conn.process_data_events(time_limit=_PUMP_SECONDS)
            except _BROKER_ERRORS:
                self._lost()


def _check_process_pool(app: App, queues: list[str]) -> None:
    """Process mode sends handlers to children by reference: they must be module-level."""
    modules = set()
    for queue in queues:
        func = app.definition(queue).func
        try:
            pickle.dumps(func)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            raise ValueError(
                f"pool=process: the handler of {queue!r} cannot be sent to a "
                f"child process; define it at module level ({exc})"
            ) from exc
        modules.add(func.__module__)
    processes.preload(sorted(modules))
