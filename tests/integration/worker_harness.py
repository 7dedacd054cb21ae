"""Helpers for the worker's integration tests (not a test module).

* :data:`app`: handlers whose behaviour the request describes (:class:`Step`); they leave
  marker files (``<uid>.<attempt>.started`` holding the pid, ``.cancel-seen``, ``.ended``)
  so that tests can see what ran, also in a worker subprocess
  (``asynctask-worker tests.integration.worker_harness:app``);
* :class:`BrokerClient`: publishes task and control messages as the operator does and
  reads the status queue, as the operator would;
* :func:`running_worker`: a :class:`Worker` in a thread of the test process.

Each test gets a virtual host of its own on the session's RabbitMQ node, so no other
client of the node (an operator left running by the e2e tests) takes its status messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal

import pika
import pika.exceptions
from pydantic import BaseModel

from asynctask_worker import App, TaskContext, TaskFailed, Worker, WorkerSettings, topology
from asynctask_worker.messages import (
    CONTENT_TYPE,
    ControlMessage,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    encode,
)

REPO = Path(__file__).resolve().parents[2]
APP_SPEC = "tests.integration.worker_harness:app"

app = App("worker-it")


class Step(BaseModel):
    dir: str
    seconds: float = 0.0
    first_attempt_seconds: float | None = None  # instead of `seconds` on attempt 1
    until_file: str | None = None  # and until this file exists
    while_file: str | None = None  # and while this file exists
    cooperative: bool = True  # stop when cancelled
    busy: bool = False  # burn CPU (pure Python) instead of sleeping
    barrier: int = 0  # first wait until this many tasks started (in `dir`)
    steps: int = 0  # progress reports
    fail: Literal["", "business", "error"] = ""


def _mark(step: Step, ctx: TaskContext, what: str, text: str = "") -> None:
    Path(step.dir, f"{ctx.uid}.{ctx.attempt}.{what}").write_text(text or str(os.getpid()))


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(i * i for i in range(2000))


@app.task("it-run")
def run(step: Step, ctx: TaskContext) -> dict[str, Any]:
    # When the handler began, to the microsecond (a file's mtime comes from the kernel's
    # coarse clock: it may lag the real time by a tick).
    _mark(step, ctx, "began-at", repr(time.time()))
    _mark(step, ctx, "started")
    try:
        if step.barrier:
            deadline = time.monotonic() + 20
            while len(list(Path(step.dir).glob("*.started"))) < step.barrier:
                if time.monotonic() > deadline:
                    raise TaskFailed("the other tasks did not start", reason="NotConcurrent")
                time.sleep(0.02)
        for i in range(1, step.steps + 1):
            ctx.progress(100 * i / step.steps, f"step {i} of {step.steps}")
            time.sleep(0.05)
        seconds = step.seconds
        if ctx.attempt == 1 and step.first_attempt_seconds is not None:
            seconds = step.first_attempt_seconds
        deadline = time.monotonic() + seconds
        while (
            time.monotonic() < deadline
            or (step.until_file and not Path(step.until_file).exists())
            or (step.while_file and Path(step.while_file).exists())
        ):
            if step.cooperative and ctx.cancelled:
                _mark(step, ctx, "cancel-seen", ctx.cancel_reason)
                ctx.raise_if_cancelled()
            if step.busy:
                _burn(0.05)
            else:
                time.sleep(0.02)
        if step.fail == "business":
            raise TaskFailed("the input was refused", reason="InputRefused")
        if step.fail == "error":
            raise ValueError("something unexpected")
        return {"pid": os.getpid(), "attempt": ctx.attempt}
    finally:
        _mark(step, ctx, "ended")


@app.task("it-async")
async def run_async(step: Step, ctx: TaskContext) -> dict[str, Any]:
    _mark(step, ctx, "started")
    try:
        await asyncio.sleep(step.seconds)
    except asyncio.CancelledError:
        _mark(step, ctx, "cancel-seen", ctx.cancel_reason)
        raise
    return {"slept": step.seconds}


def markers(directory: Path, ref: TaskRef, what: str) -> list[Path]:
    """The ``what`` markers of a task, one per attempt that got that far."""
    return sorted(directory.glob(f"{ref.uid}.*.{what}"))


def pid_alive(pid: int) -> bool:
    """Whether a process runs (a zombie does not count). Linux: reads /proc."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


class BrokerClient:
    """The operator's side of the wire, for tests: publish tasks/controls, read statuses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._conn: pika.BlockingConnection | None = None
        self._ch: Any = None
        self._statuses: dict[str, list[StatusMessage]] = defaultdict(list)

    def _channel(self) -> Any:
        if self._conn is None or not self._conn.is_open or not self._ch.is_open:
            self._conn = pika.BlockingConnection(pika.URLParameters(self.url))
            self._ch = self._conn.channel()
            self._ch.confirm_delivery()
            topology.declare_all(self._ch)
        return self._ch

    def _retry(self, fn: Callable[[Any], Any], timeout: float = 60) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return fn(self._channel())
            except (pika.exceptions.AMQPError, OSError):
                self._conn = None
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def publish_task(
        self, queue: str, request: Any = None, *, timeout_seconds: int | None = None
    ) -> TaskRef:
        ref = TaskRef(uid=str(uuid.uuid4()), namespace="it", name=f"{queue}-{uuid.uuid4().hex[:6]}")
        msg = TaskMessage(task=ref, queue=queue, request=request, timeout_seconds=timeout_seconds)

        def publish(ch: Any) -> None:
            topology.declare_task_queue(ch, queue)
            ch.basic_publish(
                "",
                topology.task_queue_name(queue),
                encode(msg),
                pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    type="task",
                    delivery_mode=pika.DeliveryMode.Persistent,
                    message_id=msg.message_id,
                ),
                mandatory=True,
            )

        self._retry(publish)
        return ref

    def publish_control(self, action: Literal["cancel", "timeout"], ref: TaskRef) -> None:
        msg = ControlMessage(action=action, task=ref)
        self._retry(
            lambda ch: ch.basic_publish(
                topology.CONTROL_EXCHANGE,
                "",
                encode(msg),
                pika.BasicProperties(content_type=CONTENT_TYPE, type="control"),
            )
        )

    def ready(self, queue: str) -> int:
        """Messages ready in a task queue (unacked ones are not counted)."""
        return int(
            self._retry(
                lambda ch: (
                    ch.queue_declare(
                        topology.task_queue_name(queue),
                        durable=True,
                        arguments=topology.quorum_queue_arguments(),
                    ).method.message_count
                )
            )
        )

    def _drain(self) -> None:
        def drain(ch: Any) -> None:
            while True:
                method, _, body = ch.basic_get(topology.STATUS_QUEUE, auto_ack=True)
                if method is None:
                    return
                msg = decode(StatusMessage, body)
                self._statuses[msg.task.uid].append(msg)

        self._retry(drain)

    def statuses(self, ref: TaskRef) -> list[StatusMessage]:
        self._drain()
        return sorted(self._statuses[ref.uid], key=lambda m: (m.attempt, m.seq))

    def wait_status(
        self, ref: TaskRef, check: Callable[[StatusMessage], bool], what: str, timeout: float = 30
    ) -> StatusMessage:
        deadline = time.monotonic() + timeout
        while True:
            for msg in self.statuses(ref):
                if check(msg):
                    return msg
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"task {ref.name}: no {what} status in {timeout}s; got "
                    f"{[(m.phase.value, m.progress) for m in self.statuses(ref)]}"
                )
            time.sleep(0.1)

    def terminal(self, ref: TaskRef, timeout: float = 30) -> StatusMessage:
        return self.wait_status(ref, lambda m: m.phase.terminal, "terminal", timeout)

    def close(self) -> None:
        if self._conn is not None and self._conn.is_open:
            with contextlib.suppress(pika.exceptions.AMQPError):
                self._conn.close()


def settings(url: str, **overrides: Any) -> WorkerSettings:
    values: dict[str, Any] = {
        "amqp_url": url,
        "queues": ["it-run", "it-async"],
        "grace_period_seconds": 0,
        "cancel_grace_seconds": 30,
        "progress_interval_seconds": 0.05,
        "reconnect_max_delay_seconds": 1,
        "control_sync_timeout_seconds": 15,
    }
    values.update(overrides)
    return WorkerSettings(**values)


@contextlib.contextmanager
def running_worker(url: str, **overrides: Any) -> Iterator[Worker]:
    """A worker serving :data:`app` in a thread; stopped (and checked stopped) afterwards."""
    worker = Worker(app, settings(url, **overrides))
    thread = threading.Thread(target=worker.run, name="it-worker", daemon=True)
    thread.start()
    try:
        if not worker.ready.wait(30):
            raise AssertionError("the worker did not start consuming within 30s")
        yield worker
    finally:
        worker.stop()
        thread.join(30)
        assert not thread.is_alive(), "the worker did not stop"


def worker_env(url: str, **extra: str) -> dict[str, str]:
    """Environment for a worker subprocess serving :data:`app`."""
    env = dict(os.environ)
    env.update(
        ASYNCTASK_WORKER_AMQP_URL=url,
        ASYNCTASK_WORKER_QUEUES="it-run,it-async",
        ASYNCTASK_WORKER_RECONNECT_MAX_DELAY_SECONDS="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    env.update(extra)
    return env
