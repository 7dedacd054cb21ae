"""The status writer: the one path by which a task's status is PATCHed.

It writes the whole status in one conditional PATCH, coalesces progress (phase changes are
written at once, progress at most once per ``progress_patch_interval_seconds`` per task),
merges a pending webhook outcome into ``status.webhook``, and then tells its observers
(Events, metrics, webhooks, deadlines) about the write. A task that succeeds costs three
writes: Pending, Processing and Succeeded, plus at most one per interval of progress; one
that ends soon after its publish costs one (:meth:`StatusWriter.hold_record`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from asynctask_operator import status as st
from asynctask_operator.background import Background
from asynctask_operator.errors import Gone, Rejected
from asynctask_operator.limits import REJECTION_CHARS
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.observers import StatusObserver, Written
from asynctask_operator.ports import TaskApi
from asynctask_operator.record_hold import RecordHold
from asynctask_operator.tasks import TaskState, TaskTable
from asynctask_worker.messages import Phase, StatusMessage, utcnow

log = logging.getLogger("asynctask.operator")

#: Held records written at once at a graceful stop (the API client has 64 connections).
RECORDERS = 32


def _terminal(status: dict[str, Any]) -> bool:
    phase = st.phase_of(status)
    return phase is not None and phase.terminal


class StatusWriter:
    def __init__(
        self,
        api: TaskApi,
        table: TaskTable,
        metrics: OperatorMetrics,
        observers: Sequence[StatusObserver],
        *,
        progress_interval_seconds: float,
        hold: RecordHold | None = None,
    ) -> None:
        self._api = api
        self._hold = hold  # how long a held record may wait under load (None: its window)
        self._in_flight = 0  # status writes sent or waiting for a connection
        self._table = table
        self._metrics = metrics
        self._observers = list(observers)
        self._interval = progress_interval_seconds
        self._flushes = Background()

    async def write(self, task: TaskState, status: dict[str, Any]) -> None:
        """Write the whole ``status`` in one PATCH; the caller holds the task's lock.

        A task whose publish is not yet recorded (:meth:`hold_record`) has its Pending
        written first, unless ``status`` is terminal: the end then carries the record (its
        ``queuedTime`` and ``messageId``) in the same write."""
        if status is task.status:
            return
        if task.recorded is not None and not _terminal(status):
            await self.record(task)
        await self._put(task, status)

    async def _put(
        self, task: TaskState, status: dict[str, Any], previous: dict[str, Any] | None = None
    ) -> None:
        if previous is None:  # the status as last written (a held record is not)
            previous = task.status if task.recorded is None else task.recorded
        folded = task.recorded is not None  # a held record rides along with this write
        if task.webhook_outcome is not None and task.webhook_outcome != status.get("webhook"):
            status = {**status, "webhook": dict(task.webhook_outcome)}
        self._in_flight += 1
        try:
            await self._api.replace_status(task.namespace, task.name, task.uid, status)
        except Gone:
            self._metrics.writes.labels("gone").inc()
            log.info("%s/%s is gone; forgetting it", task.namespace, task.name)
            self.forget(task.uid)
            return
        except Rejected as exc:
            self._metrics.writes.labels("rejected").inc()
            status = await self._write_rejection(task, exc)
        finally:
            self._in_flight -= 1
        task.status = status
        task.last_write = time.monotonic()
        task.webhook_outcome = None
        task.recorded = None
        phase = st.phase_of(status)
        if phase is not None and phase.terminal:
            self._stop_coalescing(task)  # the terminal write has the final word
            if folded:
                self._metrics.records_folded.inc()
        written = Written(task.ref, task.spec, previous, status)
        for observer in self._observers:
            observer.status_written(written)
        self._table.compact(task)  # observers saw the whole status; memory keeps what is needed

    # the record of a publish, held for the task's end -------------------------------------

    def hold_record(self, task: TaskState, status: dict[str, Any], seconds: float) -> None:
        """Keep ``status`` (a new task's Pending, the record that its message was
        published) in memory for up to ``seconds`` instead of writing it now: a task that
        ends sooner is written once, its end carrying the record. Every other write of the
        task writes the record first (:meth:`write`), and so does a timer at the end of the
        window, so a task that takes longer shows Pending as ever; when the window ends
        while the writer is busy, the record waits longer (:mod:`record_hold`, up to
        ``publish_fold_max_seconds`` after the publish). Until then the object
        has no phase: an operator killed meanwhile publishes the task again when it starts
        (the same message id, so at-least-once, deduplicated where a worker can); the
        caller holds the task's lock."""
        task.recorded = task.status
        task.status = status
        now = time.monotonic()
        task.record_at = now + seconds
        asyncio.get_running_loop().call_later(seconds, self._record_due, task, now)

    def _record_due(self, task: TaskState, since: float, extended: bool = False) -> None:
        if task.recorded is None or not self._table.holds(task):
            return
        now = time.monotonic()
        more = 0.0 if self._hold is None else self._hold.extension(now - since, self._in_flight)
        if more > 0:  # the apiserver is busy: the task's end may yet carry the record
            if not extended:
                self._metrics.records_extended.inc()
            task.record_at = now + more
            asyncio.get_running_loop().call_later(more, self._record_due, task, since, True)
        else:
            self._flushes.spawn(self._record_now(task), name=f"record-{task.uid}")

    async def _record_now(self, task: TaskState) -> None:
        async with task.lock:
            await self.record(task)

    async def record(self, task: TaskState) -> None:
        """Write a held record now (nothing if there is none); the caller holds the lock."""
        previous = task.recorded
        if previous is not None and self._table.holds(task):
            await self._put(task, task.status, previous)

    async def record_all(self) -> int:
        """Write every held record (a graceful stop: a restart then publishes nothing
        again); how many were written."""
        held = [task for task in self._table if task.recorded is not None]
        slots = asyncio.Semaphore(RECORDERS)

        async def record(task: TaskState) -> None:
            async with slots, task.lock:
                await self.record(task)

        # several at once: under load up to publish_fold_max_seconds of publishes are held
        await asyncio.gather(*(record(task) for task in held))
        return len(held)

    async def record_all_within(self, within: float = 10.0) -> None:
        """:meth:`record_all` at a graceful stop, bounded: the Pending of the tasks whose
        publish is not yet recorded, so the next operator publishes none of them again."""
        try:
            written = await asyncio.wait_for(self.record_all(), within)
        except TimeoutError:
            log.warning(
                "stopping before every held Pending was written: those tasks are "
                "published again (the same message id) when the operator starts"
            )
        else:
            if written:
                log.info("wrote the Pending of %d task(s) before stopping", written)

    async def _write_rejection(self, task: TaskState, exc: Rejected) -> dict[str, Any]:
        """Never leave a task stuck behind a status the apiserver refuses (e.g. a field over
        its limit): record why instead, without the offending content."""
        log.error("status of %s/%s refused: %s", task.namespace, task.name, exc)
        fallback = {k: v for k, v in task.status.items() if k not in ("result", "error")}
        status = st.end(
            fallback,
            Phase.ERROR,
            "StatusRejected",
            f"the apiserver refused the task's status: {str(exc)[:REJECTION_CHARS]}",
            utcnow(),
            task.generation,
        )
        await self._api.replace_status(task.namespace, task.name, task.uid, status)
        return status

    async def end(self, task: TaskState, phase: Phase, reason: str, message: str) -> None:
        """End the task for a reason of the operator's own (see :func:`status.end`)."""
        await self.write(
            task, st.end(task.status, phase, reason, message, utcnow(), task.generation)
        )

    def forget(self, uid: str) -> None:
        """Stop tracking a task: its pending progress, and what observers keep about it."""
        task = self._table.pop(uid)
        if task is not None:
            self._stop_coalescing(task)
        for observer in self._observers:
            observer.task_forgotten(uid)

    # progress coalescing -------------------------------------------------------------

    def coalesce(self, task: TaskState, msg: StatusMessage) -> bool:
        """Hold ``msg`` (a progress change) if the task was written too recently; then the
        newest progress is written when the interval is over. Progress is lossy by nature, so
        the caller acks a held message at once: a crash loses one tick at most."""
        since = time.monotonic() - task.last_write
        if since >= self._interval:
            return False
        task.coalesced_progress = msg
        if task.flush is None:
            task.flush = asyncio.get_running_loop().call_later(
                self._interval - since, self._schedule_flush, task
            )
        return True

    def _stop_coalescing(self, task: TaskState) -> None:
        task.coalesced_progress = None
        if task.flush is not None:
            task.flush.cancel()
            task.flush = None

    def _schedule_flush(self, task: TaskState) -> None:
        task.flush = None
        self._flushes.spawn(self._flush(task), name=f"flush-{task.uid}")

    async def _flush(self, task: TaskState) -> None:
        async with task.lock:
            msg, task.coalesced_progress = task.coalesced_progress, None
            if msg is not None and st.classify(task.status, msg) is not st.Change.IGNORE:
                await self.write(task, st.apply(task.status, msg, utcnow(), task.generation))
