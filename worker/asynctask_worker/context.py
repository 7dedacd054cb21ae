"""What a handler can see and do while it runs: progress, cancellation, identity."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from asynctask_worker.messages import TaskRef

ProgressSink = Callable[[int, str | None], None]


class TaskCancelled(Exception):
    """Raised by :meth:`TaskContext.raise_if_cancelled` once the task has been cancelled."""


class TaskContext:
    """Handed to a handler as its second argument.

    ``progress()`` is cheap to call often: the runtime sends at most a few updates a
    second and the operator writes at most one status patch per second.
    """

    def __init__(self, task: TaskRef, attempt: int, queue: str, sink: ProgressSink,
                 logger: logging.Logger | None = None) -> None:
        self.task = task
        self.attempt = attempt
        self.queue = queue
        self._sink = sink
        self._cancelled = threading.Event()
        self._cancel_reason = ""
        self._callbacks: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        base = logger or logging.getLogger("asynctask.task")
        self.logger = logging.LoggerAdapter(base, {
            "task_uid": task.uid, "task_namespace": task.namespace, "task_name": task.name,
            "attempt": attempt, "queue": queue})

    @property
    def uid(self) -> str:
        return self.task.uid

    @property
    def name(self) -> str:
        return self.task.name

    @property
    def namespace(self) -> str:
        return self.task.namespace

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report how far along the task is (0-100) and, optionally, a short message."""
        value = max(0, min(100, int(percent)))
        self._sink(value, message)

    @property
    def cancelled(self) -> bool:
        """True once the task was cancelled (or timed out): stop as soon as you can."""
        return self._cancelled.is_set()

    @property
    def cancel_reason(self) -> str:
        return self._cancel_reason

    def raise_if_cancelled(self) -> None:
        if self._cancelled.is_set():
            raise TaskCancelled(self._cancel_reason or "cancelled")

    def wait_cancelled(self, timeout: float | None = None) -> bool:
        """Sleep up to ``timeout`` seconds, waking early if the task is cancelled."""
        return self._cancelled.wait(timeout)

    # runtime side -------------------------------------------------------------------

    def _cancel(self, reason: str) -> None:
        with self._lock:
            if self._cancelled.is_set():
                return
            self._cancel_reason = reason
            self._cancelled.set()
            callbacks = list(self._callbacks)
        for cb in callbacks:
            cb()

    def _on_cancel(self, cb: Callable[[], None]) -> None:
        with self._lock:
            if not self._cancelled.is_set():
                self._callbacks.append(cb)
                return
        cb()
