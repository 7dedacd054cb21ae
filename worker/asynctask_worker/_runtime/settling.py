"""Settling a delivery that needs no handler: a duplicate, an adoption, a revoked task.

The dispatcher's ledger decides (:meth:`~asynctask_worker._runtime.ledger.Ledger.triage`);
this carries the verdict out, outside its lock: acks, requeues, and for a task revoked
before it started, its terminal status.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future

from asynctask_worker._runtime import outcome
from asynctask_worker._runtime.jobs import Delivery, JobKey, StatusSink, Verdict, job_key
from asynctask_worker._runtime.revocation import BoundedMap, Revocation
from asynctask_worker.context import log_fields
from asynctask_worker.metrics import WorkerMetrics

log = logging.getLogger("asynctask.worker")


class EarlySettler:
    """Carries out the verdicts that need no handler; remembers revoked tasks as done."""

    def __init__(
        self, sink: StatusSink, metrics: WorkerMetrics, done: BoundedMap[JobKey, bool]
    ) -> None:
        self.sink = sink
        self.metrics = metrics
        self._done = done

    def settle(self, d: Delivery, verdict: Verdict, rev: Revocation | None) -> None:
        """Carry out a verdict that needs no handler (lock not held)."""
        msg = d.message
        fields = log_fields(msg.task, d.attempt, msg.queue)
        if verdict is Verdict.REQUEUE:
            d.requeue()
        elif verdict is Verdict.DUPLICATE:
            log.info(
                "task %s/%s: redelivered after it finished here: acked",
                msg.task.namespace,
                msg.task.name,
                extra=fields,
            )
            d.ack()
        elif verdict is Verdict.ADOPTED:
            log.info(
                "task %s/%s: redelivered while it runs here: the running attempt keeps it",
                msg.task.namespace,
                msg.task.name,
                extra=fields,
            )
        elif verdict is Verdict.REVOKED and rev is not None:
            self.report_revoked(d, rev)

    def report_revoked(self, delivery: Delivery, rev: Revocation) -> None:
        """Cancelled before it started: report it, ack it, never run the handler."""
        msg = delivery.message
        result = outcome.stopped(rev.reason, rev.detail, before_start=True)
        self.metrics.task_revoked(msg.queue, result.phase)
        log.info(
            "task %s/%s: %s before it started: acked without running the handler",
            msg.task.namespace,
            msg.task.name,
            rev.reason,
            extra=log_fields(msg.task, delivery.attempt, msg.queue),
        )
        future = self.sink.send(
            msg.task, delivery.attempt, result.phase, error=result.error, message=result.message
        )

        def settled(f: Future[None]) -> None:
            if f.exception() is None:
                self._done.put(job_key(msg), True)
                delivery.ack()
            else:
                delivery.requeue()

        future.add_done_callback(settled)
