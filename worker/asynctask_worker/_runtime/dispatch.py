"""Scheduling task attempts: bounded concurrency, revocation, time limits, finishing once.

The :class:`Dispatcher` knows nothing about RabbitMQ: the runtime hands it *deliveries*
(a task message plus ``ack()``/``requeue()``) and a *status sink* (where status messages
go; the future resolves when the broker confirmed one). The in-memory
:class:`~asynctask_worker.testing.StubBroker` drives the very same dispatcher.

Threads: any thread may call :meth:`submit`, :meth:`control` and the shutdown methods.
One *supervisor* thread per dispatcher enforces deadlines every ``tick``: one scheduler
for every task's time limit and grace period, no timer per task. It starts attempts when
a slot is free in process mode; in thread mode the thread that brings a delivery or frees
a slot starts them at once (no wake-up per task), and the tick is only the fallback.
Outcomes arrive from the execution threads; a delivery is acked from the sink's confirm
callback.

The life of an attempt (a *job*), guarded by the lock of the dispatcher's
:class:`~asynctask_worker._runtime.ledger.Ledger` so that exactly one ending wins:

* ``RUNNING → FINISHING → DONE``: an outcome (the handler's, or a hard stop's) is sent as
  the terminal status; once the broker confirmed it, the delivery is acked;
* ``RUNNING → RELEASED``: shutdown after the grace period: the delivery is requeued and
  nothing is reported; a late outcome of the handler is dropped.

A cancelled or timed-out job gets ``ctx.cancelled`` at once and ``cancel_grace_seconds``
to stop; then it is stopped hard: its process killed (process mode), or (thread mode)
its outcome reported and its thread abandoned.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future

from asynctask_worker._runtime import offload, outcome
from asynctask_worker._runtime.execution import Execution, ThreadExecution
from asynctask_worker._runtime.jobs import Delivery, Job, Pool, State, StatusSink, Verdict
from asynctask_worker._runtime.ledger import Ledger
from asynctask_worker._runtime.outcome import Outcome
from asynctask_worker._runtime.processes import ProcessExecution
from asynctask_worker._runtime.revocation import RevokedSet, revocation_of
from asynctask_worker._runtime.settling import EarlySettler
from asynctask_worker.app import App
from asynctask_worker.context import (
    CANCELLED,
    TIMED_OUT,
    WORKER_SHUTDOWN,
    TaskContext,
)
from asynctask_worker.messages import ControlMessage, Phase
from asynctask_worker.metrics import WorkerMetrics

log = logging.getLogger("asynctask.worker")


#: Added to a time limit counted from :meth:`Dispatcher._handler_started`, which runs just
#: before the handler: what may pass between the two must not make the limit early.
START_MARGIN_SECONDS = 0.05


class Dispatcher:
    def __init__(
        self,
        app: App,
        sink: StatusSink,
        *,
        concurrency: int = 1,
        pool: Pool = "thread",
        cancel_grace_seconds: float = 10.0,
        revoked: RevokedSet | None = None,
        metrics: WorkerMetrics | None = None,
        log_format: str = "text",
        log_level: str = "INFO",
        done_capacity: int = 10_000,
        tick: float = 0.1,
        payload_retry_seconds: float = 60.0,
    ) -> None:
        self.app = app
        self.sink = sink
        self.concurrency = concurrency
        self.pool = pool
        self.cancel_grace = cancel_grace_seconds
        self.revoked = revoked if revoked is not None else RevokedSet()
        self.metrics = metrics or WorkerMetrics()
        self._log_format = log_format
        self._log_level = log_level
        self._tick = tick
        self._payload_retry = payload_retry_seconds
        self._ledger = Ledger(
            self.revoked,
            concurrency=concurrency,
            done_capacity=done_capacity,
            wake_for_starts=pool != "thread",  # thread mode starts jobs itself: _start_now
        )
        self._early = EarlySettler(sink, self.metrics, self._ledger.done)
        self._abandoned: list[Execution] = []
        self._thread = threading.Thread(
            target=self._supervise, daemon=True, name="asynctask-supervisor"
        )

    # lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._ledger.stop()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5)

    # what the transport calls -------------------------------------------------------------

    def submit(self, delivery: Delivery) -> None:
        """A task message arrived: run it (when a slot is free), or settle it at once."""
        verdict, revocation = self._ledger.admit(delivery)
        self._early.settle(delivery, verdict, revocation)
        if verdict is Verdict.NEW:
            self._start_now()

    def _start_now(self) -> None:
        """Thread mode: start what the free slots take on the calling thread, rather than
        waking the supervisor for it (a thread's wake-up per task). Process mode leaves it
        to the supervisor: starting a child process takes long."""
        if self.pool != "thread":
            return
        starts, early = self._ledger.take_startable(self._new_job)
        for delivery, verdict, revocation in early:
            self._early.settle(delivery, verdict, revocation)
        for job in starts:
            self._start(job)

    def control(self, msg: ControlMessage) -> bool:
        """A cancellation or time-out: remember it; stop the task if it is here."""
        rev = revocation_of(msg)
        self.revoked.put(msg.task.uid, rev)
        jobs, queued = self._ledger.revoke(msg.task.uid)
        for job in jobs:
            self._stop(job, rev.reason, rev.detail)
        for d in queued:
            self._early.report_revoked(d, rev)
        return bool(jobs or queued)

    def forget_pending(self) -> int:
        """The connection is gone: deliveries not started yet will be redelivered."""
        return self._ledger.forget_pending()

    def close_intake(self) -> int:
        """Shutdown, step 1: start nothing new; requeue what has not started."""
        queued = self._ledger.close_intake()
        for d in queued:
            d.requeue()
        return len(queued)

    def release_running(self) -> int:
        """Shutdown, step 2 (after the grace period): requeue what still runs, report nothing."""
        jobs = self._ledger.release_running()
        for job in jobs:
            job.ctx._cancel(WORKER_SHUTDOWN)
            self.metrics.in_flight.labels(job.message.queue).dec()
            for delivery in job.deliveries:
                delivery.requeue()
            killed = job.execution is not None and job.execution.kill()
            log.warning(
                "task %s/%s: still running after the grace period: requeued%s",
                job.ctx.namespace,
                job.ctx.name,
                " (its process was killed)" if killed else "",
                extra=job.ctx.log_fields,
            )
        return len(jobs)

    # introspection ------------------------------------------------------------------------

    @property
    def active(self) -> int:
        """Attempts running or reporting their outcome."""
        return self._ledger.count()

    @property
    def finishing(self) -> int:
        return self._ledger.count(State.FINISHING)

    @property
    def pending(self) -> int:
        return self._ledger.waiting()

    # the supervisor thread ----------------------------------------------------------------

    def _supervise(self) -> None:
        while (todo := self._ledger.next_round(self._tick, self._new_job)) is not None:
            for delivery, verdict, revocation in todo.early:
                self._early.settle(delivery, verdict, revocation)
            for job in todo.starts:
                self._start(job)
            for job in todo.soft:
                self._stop(
                    job,
                    TIMED_OUT,
                    f"it ran longer than its limit of {job.message.timeout_seconds}s",
                )
            for job in todo.hard:
                self._hard_stop(job)
            self._count_abandoned()

    def _new_job(self, d: Delivery) -> Job:
        # The time limit is set when the handler starts (:meth:`_handler_started`), not
        # here: a process pool child takes a while to start, and a limit counted from
        # before would stop the handler early.
        msg = d.message
        job = Job(d, time.monotonic(), None)
        job.ctx = TaskContext(
            msg.task, d.attempt, msg.queue, lambda percent, text: self._progress(job, percent, text)
        )
        return job

    def _progress(self, job: Job, percent: int, message: str | None) -> None:
        # Not after the end: an abandoned or released handler may still report. The attempt
        # is the one that runs (its context's), not that of a redelivery it adopted.
        if job.state is State.RUNNING:
            self.sink.progress(job.message.task, job.ctx.attempt, percent, message)

    def _start(self, job: Job) -> None:
        msg, ctx = job.message, job.ctx
        log.info(
            "task %s/%s attempt %d: started",
            ctx.namespace,
            ctx.name,
            ctx.attempt,
            extra=ctx.log_fields,
        )
        self.metrics.task_started(msg.queue)
        definition = self.app.definition(msg.queue)
        plan = offload.plan_of(msg, self._payload_retry)

        def on_outcome(result: Outcome) -> None:
            self._finish(job, result)

        def on_started() -> None:
            self._handler_started(job)

        execution: Execution
        if self.pool == "process":
            execution = ProcessExecution(
                definition,
                msg.request,
                ctx,
                on_outcome,
                on_started,
                log_format=self._log_format,
                log_level=self._log_level,
                plan=plan,
            )
        else:
            execution = ThreadExecution(definition, msg.request, ctx, on_outcome, on_started, plan)
        job.execution = execution
        try:
            execution.start()
        except Exception as exc:  # e.g. no process could be started
            log.exception("task %s: could not start its handler", ctx.uid, extra=ctx.log_fields)
            self._finish(job, outcome.from_exception(exc))

    def _handler_started(self, job: Job) -> None:
        """The handler begins now (its thread or child process runs): report Processing (the
        sink may hold it for its start window, :mod:`.starts`: this message's ``at`` is the
        start either way) and count the time limit from here, plus
        :data:`START_MARGIN_SECONDS`: the handler's first line runs a moment after this call
        (another thread may hold the GIL in between, a child process reports over a pipe),
        and a limit must never be early."""
        timeout = job.message.timeout_seconds
        if not self._ledger.arm_time_limit(
            job, timeout + START_MARGIN_SECONDS if timeout else None
        ):
            return  # already over (stopped hard before its process got going)
        self.sink.send(job.message.task, job.ctx.attempt, Phase.PROCESSING, message="Processing")

    def _stop(self, job: Job, reason: str, detail: str) -> None:
        """Soft stop: set ``ctx.cancelled`` and start the grace period."""
        if not self._ledger.arm_grace(job, self.cancel_grace):
            return
        if job.ctx._cancel(reason, detail):
            log.info(
                "task %s/%s: %s; the handler has %.1fs to stop",
                job.ctx.namespace,
                job.ctx.name,
                reason,
                self.cancel_grace,
                extra=job.ctx.log_fields,
            )

    def _hard_stop(self, job: Job) -> None:
        ctx = job.ctx
        if not self._finish(
            job, outcome.stopped(ctx.cancel_reason or CANCELLED, ctx.cancel_detail)
        ):
            return
        execution = job.execution
        if execution is not None and execution.kill():
            log.warning(
                "task %s/%s: the handler did not stop within %.1fs: its process was killed",
                ctx.namespace,
                ctx.name,
                self.cancel_grace,
                extra=ctx.log_fields,
            )
        elif execution is not None:
            with self._ledger.cond:
                self._abandoned.append(execution)
            log.warning(
                "task %s/%s: the handler did not stop within %.1fs: reported %s; its "
                "thread keeps running in the background (use pool=process to kill "
                "handlers)",
                ctx.namespace,
                ctx.name,
                self.cancel_grace,
                ctx.cancel_reason,
                extra=ctx.log_fields,
            )

    def _count_abandoned(self) -> None:
        with self._ledger.cond:
            self._abandoned = [e for e in self._abandoned if e.alive()]
            n = len(self._abandoned)
        self.metrics.abandoned.set(n)

    # endings ------------------------------------------------------------------------------

    def _finish(self, job: Job, result: Outcome) -> bool:
        """Report the terminal status of a running job; False if it already ended."""
        if not self._ledger.finishing(job):
            return False
        ctx, msg = job.ctx, job.message
        reason = ctx.cancel_reason
        if reason in (CANCELLED, TIMED_OUT):
            result = outcome.stopped(reason, ctx.cancel_detail)  # the stop wins
        seconds = time.monotonic() - job.started
        self.metrics.task_finished(msg.queue, result.phase, seconds)
        if result.moved is not None:
            m = result.moved
            self.metrics.payloads_moved(
                msg.queue, m.downloaded, m.uploaded, m.download_retries, m.upload_retries
            )
        log.info(
            "task %s/%s attempt %d: %s in %.2fs%s",
            ctx.namespace,
            ctx.name,
            ctx.attempt,
            result.phase.value,
            seconds,
            f" ({result.error.reason}: {result.error.message})" if result.error else "",
            extra=ctx.log_fields,
        )
        future = self.sink.send(
            msg.task,
            ctx.attempt,
            result.phase,
            result=result.result,
            result_ref=result.result_ref,
            error=result.error,
            message=result.message,
            progress=100 if result.phase is Phase.SUCCEEDED else None,
        )
        future.add_done_callback(lambda f: self._settled(job, f))
        return True

    def _settled(self, job: Job, future: Future[None]) -> None:
        error = future.exception()
        deliveries = self._ledger.settled(job, confirmed=error is None)
        if error is None:
            for delivery in deliveries:
                delivery.ack()
        else:
            log.error(
                "task %s: could not report its outcome (%s): back to its queue",
                job.ctx.uid,
                error,
                extra=job.ctx.log_fields,
            )
            for delivery in deliveries:
                delivery.requeue()
        self._start_now()  # its slot is free
