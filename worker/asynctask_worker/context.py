"""What a handler can see and do while it runs: progress, cancellation, identity, logging."""

from __future__ import annotations

import contextvars
import logging
import threading
from collections.abc import Callable
from typing import Any

from asynctask_worker.messages import TaskRef

ProgressSink = Callable[[int, str | None], None]

#: Why a task was told to stop (``TaskContext.cancel_reason``).
CANCELLED = "Cancelled"
TIMED_OUT = "TimedOut"
#: The worker is shutting down (SIGTERM) or lost its delivery: the task goes back to its
#: queue for another attempt and this attempt reports nothing.
WORKER_SHUTDOWN = "WorkerShutdown"

MAX_PROGRESS_MESSAGE = 1024

#: The fields every log record about a task carries (JSON keys; the text suffix shows them).
LOG_FIELDS = ("task_uid", "task_namespace", "task_name", "attempt", "queue")

log = logging.getLogger("asynctask.worker")

#: The task the current thread (or asyncio task) works for; the log filter reads it to put
#: the task's ids on every record, whichever logger wrote it.
current_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "asynctask_current_task", default=None
)


def log_fields(task: TaskRef, attempt: int, queue: str) -> dict[str, Any]:
    """The :data:`LOG_FIELDS` of one attempt: the one place their values are spelled out."""
    return dict(zip(LOG_FIELDS, (task.uid, task.namespace, task.name, attempt, queue), strict=True))


class TaskCancelled(Exception):
    """Raised by :meth:`TaskContext.raise_if_cancelled` once the task has been cancelled."""


class TaskContext:
    """Handed to a handler as its second argument.

    ``progress()`` is cheap to call often: the runtime sends at most a few updates a
    second and the operator writes at most one status patch per second.
    """

    def __init__(
        self,
        task: TaskRef,
        attempt: int,
        queue: str,
        sink: ProgressSink,
        logger: logging.Logger | None = None,
    ) -> None:
        self.task = task
        self.attempt = attempt
        self.queue = queue
        self._sink = sink
        self._cancelled = threading.Event()
        self._cancel_reason = ""
        self._cancel_detail = ""
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self.logger = logging.LoggerAdapter(
            logger or logging.getLogger("asynctask.task"), self.log_fields
        )

    # identity ---------------------------------------------------------------------------

    @property
    def uid(self) -> str:
        """The AsyncTask object's ``metadata.uid``."""
        return self.task.uid

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def namespace(self) -> str:
        return self.task.namespace

    @property
    def log_fields(self) -> dict[str, Any]:
        """The fields every log record about this task carries."""
        return log_fields(self.task, self.attempt, self.queue)

    # progress ---------------------------------------------------------------------------

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report how far along the task is (0-100) and, optionally, a short message."""
        value = max(0, min(100, int(percent)))
        self._sink(value, message[:MAX_PROGRESS_MESSAGE] if message is not None else None)

    # cancellation -----------------------------------------------------------------------

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled (or ran out of time): stop as soon as you can."""
        return self._cancelled.is_set()

    @property
    def cancel_reason(self) -> str:
        """``"Cancelled"``, ``"TimedOut"`` or ``"WorkerShutdown"``; empty while running."""
        return self._cancel_reason

    @property
    def cancel_detail(self) -> str:
        """Free text that came with the cancellation (e.g. who cancelled), if any."""
        return self._cancel_detail

    def raise_if_cancelled(self) -> None:
        """Raise :class:`TaskCancelled` if the task was cancelled; call it between steps."""
        if self._cancelled.is_set():
            raise TaskCancelled(self._cancel_reason or CANCELLED)

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early if the task is cancelled.

        Returns True if the task was cancelled: ``time.sleep`` that listens.
        """
        return self._cancelled.wait(timeout)

    # runtime side -------------------------------------------------------------------------

    def _cancel(self, reason: str, detail: str = "") -> bool:
        """Set the cancel flag (the first reason wins); returns False if it was already set."""
        with self._lock:
            if self._cancelled.is_set():
                return False
            self._cancel_reason = reason
            self._cancel_detail = detail
            self._cancelled.set()
            callbacks = list(self._callbacks)
        for cb in callbacks:
            try:
                cb()
            except Exception:  # a callback must not stop the others, nor the caller
                log.exception("cancel callback of task %s failed", self.task.uid)
        return True

    def _on_cancel(self, cb: Callable[[], None]) -> None:
        """Run ``cb`` when the task is cancelled (at once if it already is)."""
        with self._lock:
            if not self._cancelled.is_set():
                self._callbacks.append(cb)
                return
        cb()
