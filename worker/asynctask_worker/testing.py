"""Test your handlers without RabbitMQ: an in-memory broker that runs them like a worker.

.. code-block:: python

    from asynctask_worker import Phase
    from asynctask_worker.testing import StubBroker, run_task

    def test_resize() -> None:
        result = run_task(app, "resize-image", {"url": "s3://bucket/cat.png"})
        assert result.phase is Phase.SUCCEEDED
        assert result.progress[-1] == (100, "done")

    def test_cancel_while_running() -> None:
        with StubBroker(app) as broker:
            task = broker.enqueue("resize-image", {"url": "s3://bucket/big.png"})
            broker.wait_started(task)
            broker.cancel(task)
            assert broker.result(task).phase is Phase.CANCELLED

:class:`StubBroker` drives the same dispatcher as the real worker: concurrency limit,
revocation, time limits, grace periods, thread or process pool. Requests go through
JSON as they would on the wire. Every ``ctx.progress()`` call is recorded (the real
worker throttles what it sends).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from asynctask_worker._runtime.dispatch import Dispatcher
from asynctask_worker._runtime.jobs import Pool
from asynctask_worker.app import App
from asynctask_worker.messages import (
    ControlMessage,
    ErrorInfo,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    encode,
)
from asynctask_worker.metrics import WorkerMetrics
from asynctask_worker.payloads import PayloadGrant, PayloadRef

__all__ = ["StubBroker", "TaskResult", "run_task"]

Progress = tuple[int, str | None]


@dataclass(frozen=True)
class TaskResult:
    """How a task ended, with everything it reported on the way."""

    task: TaskRef
    phase: Phase
    attempt: int
    result: Any
    error: ErrorInfo | None
    message: str | None
    progress: list[Progress]
    statuses: list[StatusMessage]
    #: A result stored in object storage (then ``result`` is None).
    result_ref: PayloadRef | None = None

    @property
    def ran(self) -> bool:
        """Whether the handler was started at all (a task cancelled while queued was not)."""
        return any(s.phase is Phase.PROCESSING for s in self.statuses)


class _MemorySink:
    """Status messages kept in memory; "confirmed" at once."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._seq: dict[tuple[str, int], int] = defaultdict(int)
        self.statuses: dict[str, list[StatusMessage]] = defaultdict(list)
        self.progress_calls: dict[str, list[Progress]] = defaultdict(list)

    def send(self, task: TaskRef, attempt: int, phase: Phase, **fields: Any) -> Future[None]:
        with self._cond:
            seq = self._seq[(task.uid, attempt)]
            self._seq[(task.uid, attempt)] += 1
            msg = StatusMessage(
                task=task, attempt=attempt, seq=seq, phase=phase, worker="stub", **fields
            )
            self.statuses[task.uid].append(msg)
            self._cond.notify_all()
        future: Future[None] = Future()
        future.set_result(None)
        return future

    def progress(self, task: TaskRef, attempt: int, percent: int, message: str | None) -> None:
        with self._cond:
            self.progress_calls[task.uid].append((percent, message))
        self.send(task, attempt, Phase.PROCESSING, progress=percent, message=message)

    def wait(
        self, uid: str, what: str, predicate: Callable[[StatusMessage], bool], timeout: float
    ) -> StatusMessage:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.statuses[uid]:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"task {uid}: not {what} after {timeout}s; statuses: "
                        f"{[m.phase.value for m in self.statuses[uid]]}"
                    )
                self._cond.wait(left)


class _StubDelivery:
    def __init__(self, broker: StubBroker, message: TaskMessage, attempt: int) -> None:
        self.broker = broker
        self.message = message
        self.attempt = attempt

    def ack(self) -> None:
        with self.broker._lock:
            self.broker.acked.append(self.message.task)

    def requeue(self) -> None:
        with self.broker._lock:
            self.broker.requeued.append(self.message.task)


class StubBroker:
    """An in-memory broker plus worker: enqueue tasks, cancel them, read their outcomes."""

    def __init__(
        self,
        app: App,
        *,
        concurrency: int = 1,
        pool: Pool = "thread",
        cancel_grace_seconds: float = 1.0,
        payload_retry_seconds: float = 60.0,
    ) -> None:
        self.app = app
        self.metrics = WorkerMetrics()
        self._sink = _MemorySink()
        self._dispatcher = Dispatcher(
            app,
            self._sink,
            concurrency=concurrency,
            pool=pool,
            cancel_grace_seconds=cancel_grace_seconds,
            metrics=self.metrics,
            tick=0.02,
            payload_retry_seconds=payload_retry_seconds,
        )
        self._lock = threading.Lock()
        self._tasks: list[TaskRef] = []
        #: Tasks whose delivery was acked / requeued, in order.
        self.acked: list[TaskRef] = []
        self.requeued: list[TaskRef] = []
        self._dispatcher.start()

    def enqueue(
        self,
        queue: str,
        request: Any = None,
        *,
        task: TaskRef | None = None,
        name: str | None = None,
        namespace: str = "default",
        timeout_seconds: int | None = None,
        attempt: int = 1,
        request_ref: PayloadRef | None = None,
        payload: PayloadGrant | None = None,
    ) -> TaskRef:
        """Publish a task as the operator would; returns its reference.

        ``request_ref`` and ``payload`` are a stored request and the grant of presigned
        URLs the operator adds when object storage is configured (docs/payloads.md)."""
        self.app.definition(queue)
        ref = task or TaskRef(
            uid=str(uuid.uuid4()),
            namespace=namespace,
            name=name or f"{queue}-{len(self._tasks) + 1}",
        )
        msg = TaskMessage(
            task=ref,
            queue=queue,
            request=request,
            request_ref=request_ref,
            payload=payload,
            attempt=attempt,
            timeout_seconds=timeout_seconds,
        )
        msg = decode(TaskMessage, encode(msg))  # what a worker receives: JSON
        with self._lock:
            self._tasks.append(ref)
        self._dispatcher.submit(_StubDelivery(self, msg, attempt))
        return ref

    def cancel(self, task: TaskRef, reason: str = "") -> None:
        """Cancel a task, queued or running (or not enqueued yet), as the operator does."""
        self._dispatcher.control(ControlMessage(action="cancel", task=task, reason=reason))

    def time_out(self, task: TaskRef, reason: str = "") -> None:
        """The operator's deadline passed for this task."""
        self._dispatcher.control(ControlMessage(action="timeout", task=task, reason=reason))

    def wait_started(self, task: TaskRef, timeout: float = 10.0) -> None:
        """Wait until the handler of ``task`` was started."""
        self._sink.wait(task.uid, "started", lambda m: m.phase is Phase.PROCESSING, timeout)

    def result(self, task: TaskRef, timeout: float = 10.0) -> TaskResult:
        """Wait for the task's terminal status and return how it ended."""
        end = self._sink.wait(task.uid, "finished", lambda m: m.phase.terminal, timeout)
        return TaskResult(
            task=task,
            phase=end.phase,
            attempt=end.attempt,
            result=end.result,
            result_ref=end.result_ref,
            error=end.error,
            message=end.message,
            progress=self.progress(task),
            statuses=self.statuses(task),
        )

    def join(self, timeout: float = 10.0) -> list[TaskResult]:
        """Wait for every enqueued task to end; their results in enqueue order."""
        deadline = time.monotonic() + timeout
        with self._lock:
            tasks = list(self._tasks)
        return [self.result(t, max(0.0, deadline - time.monotonic())) for t in tasks]

    def statuses(self, task: TaskRef) -> list[StatusMessage]:
        with self._sink._cond:
            return list(self._sink.statuses[task.uid])

    def progress(self, task: TaskRef) -> list[Progress]:
        """Every ``ctx.progress(percent, message)`` call of the task, in order."""
        with self._sink._cond:
            return list(self._sink.progress_calls[task.uid])

    def close(self) -> None:
        """Stop: what has not started is requeued; running handlers are released."""
        self._dispatcher.close_intake()
        self._dispatcher.release_running()
        self._dispatcher.stop()

    def __enter__(self) -> StubBroker:
        return self

    def __exit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def run_task(
    app: App,
    queue: str,
    request: Any = None,
    *,
    timeout_seconds: int | None = None,
    cancel_after: float | None = None,
    cancel_grace_seconds: float = 1.0,
    pool: Pool = "thread",
    wait: float = 30.0,
) -> TaskResult:
    """Run one task to its end, in memory, and return how it ended.

    ``cancel_after`` cancels it that many seconds after its handler started;
    ``timeout_seconds`` is the task's time limit, as in ``spec.timeoutSeconds``.
    """
    with StubBroker(app, pool=pool, cancel_grace_seconds=cancel_grace_seconds) as broker:
        task = broker.enqueue(queue, request, timeout_seconds=timeout_seconds)
        if cancel_after is not None:
            broker.wait_started(task, wait)
            try:
                return broker.result(task, cancel_after)
            except TimeoutError:
                broker.cancel(task)
        return broker.result(task, wait)
