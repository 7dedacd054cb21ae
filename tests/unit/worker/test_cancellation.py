"""Cancellation, time limits and hard stops, in memory (StubBroker: the real dispatcher)."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from asynctask_worker import App, Phase, TaskContext, TaskFailed
from asynctask_worker.messages import TaskRef
from asynctask_worker.testing import StubBroker, run_task

app = App("unit-cancel")
seen: dict[str, Any] = {}
release = threading.Event()


@app.task("cooperative")
def cooperative(request: dict[str, Any], ctx: TaskContext) -> str:
    if ctx.wait_cancelled(30):
        seen[ctx.uid] = (ctx.cancel_reason, ctx.cancel_detail)
        ctx.raise_if_cancelled()
    return "slept"


@app.task("async")
async def async_handler(request: dict[str, Any], ctx: TaskContext) -> str:
    try:
        await asyncio.sleep(30)
    except asyncio.CancelledError:
        seen[ctx.uid] = ("CancelledError", ctx.cancel_reason)
        raise
    return "slept"


@app.task("ignores-then-returns")
def ignores_then_returns(request: dict[str, Any], ctx: TaskContext) -> str:
    ctx.wait_cancelled(30)
    return "done anyway"  # the stop wins all the same


@app.task("ignores-then-fails")
def ignores_then_fails(request: dict[str, Any], ctx: TaskContext) -> None:
    ctx.wait_cancelled(30)
    raise TaskFailed("gave up")


@app.task("stubborn")
def stubborn(request: dict[str, Any], ctx: TaskContext) -> str:
    """Ignores its cancellation until `release` is set (thread pool)."""
    release.wait(30)
    ctx.progress(99, "still here")  # too late: the task has ended
    seen[ctx.uid] = "returned late"
    return "late"


@app.task("blocker")
def blocker(request: dict[str, Any], ctx: TaskContext) -> str:
    release.wait(30)
    return "unblocked"


@app.task("never")
def never(request: dict[str, Any], ctx: TaskContext) -> None:
    seen[ctx.uid] = "ran"


# Process pool handlers: module-level, they run in a child process. They talk back
# through files, as nothing they change in memory is visible here.


@app.task("child-stubborn")
def child_stubborn(request: dict[str, str], ctx: TaskContext) -> None:
    Path(request["pidfile"]).write_text(str(os.getpid()))
    while True:
        time.sleep(0.05)  # never looks at ctx.cancelled


@app.task("child-cooperative")
def child_cooperative(request: dict[str, str], ctx: TaskContext) -> None:
    ctx.progress(10, "waiting in the child")
    ctx.wait_cancelled(30)
    Path(request["seen"]).write_text(ctx.cancel_reason)
    ctx.raise_if_cancelled()


@app.task("child-crash")
def child_crash(request: None) -> None:
    os._exit(3)


@pytest.fixture(autouse=True)
def _reset() -> Any:
    seen.clear()
    release.clear()
    yield
    release.set()  # let abandoned threads end


def test_a_running_sync_handler_sees_the_cancellation_and_stops() -> None:
    with StubBroker(app, cancel_grace_seconds=30) as broker:
        task = broker.enqueue("cooperative", {})
        broker.wait_started(task)
        broker.cancel(task, reason="by the user")
        result = broker.result(task, timeout=10)  # well before the grace period ends
    assert result.phase is Phase.CANCELLED and result.error is not None
    assert result.error.reason == "Cancelled" and "by the user" in result.error.message
    assert seen[task.uid] == ("Cancelled", "by the user")
    assert broker.acked == [task]


def test_a_running_async_handler_gets_asyncio_cancellation() -> None:
    with StubBroker(app, cancel_grace_seconds=30) as broker:
        task = broker.enqueue("async", {})
        broker.wait_started(task)
        broker.cancel(task)
        result = broker.result(task, timeout=10)
    assert result.phase is Phase.CANCELLED
    assert seen[task.uid] == ("CancelledError", "Cancelled")


@pytest.mark.parametrize("queue", ["ignores-then-returns", "ignores-then-fails"])
def test_once_cancelled_the_outcome_is_cancelled_whatever_the_handler_does(queue: str) -> None:
    result = run_task(app, queue, {}, cancel_after=0.05)
    assert result.phase is Phase.CANCELLED


def test_a_task_cancelled_before_it_is_delivered_never_runs() -> None:
    task = TaskRef(uid="revoked-1", namespace="ns", name="never")
    with StubBroker(app) as broker:
        broker.cancel(task)
        broker.enqueue("never", {}, task=task)
        result = broker.result(task)
    assert result.phase is Phase.CANCELLED and not result.ran
    assert result.error is not None and "before it started" in result.error.message
    assert [s.phase for s in result.statuses] == [Phase.CANCELLED]
    assert task.uid not in seen and broker.acked == [task]
    assert (
        broker.metrics.value("asynctask_worker_tasks_revoked_before_start_total", queue="never")
        == 1
    )


def test_a_task_cancelled_while_waiting_for_a_slot_is_reported_at_once_and_never_runs() -> None:
    with StubBroker(app, concurrency=1) as broker:
        busy = broker.enqueue("blocker", {})
        broker.wait_started(busy)
        waiting = broker.enqueue("never", {})
        broker.cancel(waiting)
        result = broker.result(waiting)  # while the only slot is still taken
        release.set()
        assert broker.result(busy).phase is Phase.SUCCEEDED
    assert result.phase is Phase.CANCELLED and not result.ran
    assert waiting.uid not in seen


def test_the_time_limit_cancels_the_handler_as_timed_out() -> None:
    result = run_task(app, "cooperative", {}, timeout_seconds=1, cancel_grace_seconds=30)
    assert result.phase is Phase.TIMED_OUT and result.error is not None
    assert result.error.reason == "TimeLimitExceeded"
    assert "limit of 1s" in result.error.message
    assert seen[result.task.uid][0] == "TimedOut"


def test_the_operators_timeout_ends_the_task_as_timed_out() -> None:
    with StubBroker(app, cancel_grace_seconds=30) as broker:
        task = broker.enqueue("cooperative", {})
        broker.wait_started(task)
        broker.time_out(task)
        assert broker.result(task).phase is Phase.TIMED_OUT


def test_the_first_stop_reason_wins() -> None:
    with StubBroker(app, cancel_grace_seconds=30) as broker:
        task = broker.enqueue("cooperative", {}, timeout_seconds=30)
        broker.wait_started(task)
        broker.cancel(task)
        broker.time_out(task)
        assert broker.result(task).phase is Phase.CANCELLED


def test_thread_pool_hard_stop_reports_after_the_grace_and_abandons_the_thread() -> None:
    with StubBroker(app, cancel_grace_seconds=0.3) as broker:
        task = broker.enqueue("stubborn", {})
        broker.wait_started(task)
        broker.cancel(task)
        result = broker.result(task, timeout=10)
        assert result.phase is Phase.CANCELLED
        assert task.uid not in seen  # the handler is still running...
        assert broker.acked == [task]  # ...but the task is done and its slot free
        broker._dispatcher._count_abandoned()
        assert broker.metrics.value("asynctask_worker_abandoned_threads") == 1
        release.set()  # the abandoned thread returns; its outcome is dropped
        deadline = time.monotonic() + 10
        while task.uid not in seen and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        assert seen[task.uid] == "returned late"
        assert [s.phase for s in broker.statuses(task) if s.phase.terminal] == [Phase.CANCELLED]
        assert broker.statuses(task)[-1].phase is Phase.CANCELLED  # nothing after the end


def test_process_pool_kills_a_handler_that_ignores_its_cancellation(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    with StubBroker(app, pool="process", cancel_grace_seconds=0.3) as broker:
        task = broker.enqueue("child-stubborn", {"pidfile": str(pidfile)})
        broker.wait_started(task, timeout=30)
        # Written, not only created (the child creates the file, then writes its pid).
        _wait_for(lambda: pidfile.exists() and pidfile.read_text().strip().isdigit())
        pid = int(pidfile.read_text())
        assert pid != os.getpid()
        broker.cancel(task)
        result = broker.result(task, timeout=10)
    assert result.phase is Phase.CANCELLED
    _wait_for(lambda: _gone(pid))


def test_process_pool_plumbs_progress_and_cancellation_through_the_pipe(tmp_path: Path) -> None:
    marker = tmp_path / "seen"
    with StubBroker(app, pool="process", cancel_grace_seconds=30) as broker:
        task = broker.enqueue("child-cooperative", {"seen": str(marker)})
        _wait_for(lambda: bool(broker.progress(task)), timeout=30)
        broker.time_out(task)
        result = broker.result(task, timeout=10)
    assert result.phase is Phase.TIMED_OUT
    assert result.progress == [(10, "waiting in the child")]
    assert marker.read_text() == "TimedOut"  # the child saw ctx.cancel_reason


def test_process_pool_reports_a_crashed_handler_as_an_error() -> None:
    result = run_task(app, "child-crash", None, pool="process")
    assert result.phase is Phase.ERROR and result.error is not None
    assert result.error.reason == "WorkerProcessDied" and "code 3" in result.error.message


def _gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie). It may vanish between two reads of
    /proc: a missing file, or one whose process is reaped while it is read (ESRCH),
    means gone too."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in "ZX"


def _wait_for(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
