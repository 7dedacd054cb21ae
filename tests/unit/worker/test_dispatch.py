"""The dispatcher's bookkeeping: slots, duplicates, redeliveries, shutdown, failed reports."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

import pytest

from asynctask_worker import App, Phase, TaskContext
from asynctask_worker._runtime.dispatch import Dispatcher
from asynctask_worker._runtime.revocation import BoundedMap
from asynctask_worker.messages import StatusMessage, TaskMessage, TaskRef
from asynctask_worker.testing import StubBroker
from testbed import wait_until as _one_wait

app = App("unit-dispatch")
gate = threading.Event()
running_now = 0
most_at_once = 0
runs: list[str] = []
_lock = threading.Lock()


@app.task("count")
def count(request: dict[str, Any], ctx: TaskContext) -> str:
    global running_now, most_at_once
    with _lock:
        runs.append(ctx.uid)
        running_now += 1
        most_at_once = max(most_at_once, running_now)
    try:
        gate.wait(request.get("wait", 0))
        if "progress" in request:
            ctx.progress(request["progress"])
        return ctx.uid
    finally:
        with _lock:
            running_now -= 1


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    global running_now, most_at_once
    running_now = most_at_once = 0
    runs.clear()
    gate.clear()
    yield
    gate.set()


class Sink:
    """Status messages in a list; each future resolves when the test says (or at once)."""

    def __init__(self, confirm: bool = True) -> None:
        self.confirm = confirm
        self.sent: list[tuple[StatusMessage, Future[None]]] = []
        self._lock = threading.Lock()

    def send(self, task: TaskRef, attempt: int, phase: Phase, **fields: Any) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            self.sent.append(
                (StatusMessage(task=task, attempt=attempt, phase=phase, **fields), future)
            )
        if self.confirm or not phase.terminal:
            future.set_result(None)
        return future

    def progress(self, task: TaskRef, attempt: int, percent: int, message: str | None) -> None:
        self.send(task, attempt, Phase.PROCESSING, progress=percent, message=message)

    def terminal(self, uid: str) -> list[tuple[StatusMessage, Future[None]]]:
        with self._lock:
            return [(m, f) for m, f in self.sent if m.task.uid == uid and m.phase.terminal]


class Delivery:
    def __init__(self, message: TaskMessage, attempt: int = 1) -> None:
        self.message = message
        self.attempt = attempt
        self.settled: list[str] = []

    def ack(self) -> None:
        self.settled.append("ack")

    def requeue(self) -> None:
        self.settled.append("requeue")


def message(uid: str, **request: Any) -> TaskMessage:
    return TaskMessage(
        task=TaskRef(uid=uid, namespace="ns", name=uid), queue="count", request=request
    )


def wait_until(check: Callable[[], bool], timeout: float = 10) -> None:
    _one_wait("the dispatcher", check, timeout, interval=0.01)


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def dispatcher(sink: Sink) -> Iterator[Dispatcher]:
    d = Dispatcher(app, sink, concurrency=2, tick=0.01)
    d.start()
    yield d
    gate.set()
    d.stop()


def test_no_more_handlers_run_at_once_than_the_concurrency() -> None:
    with StubBroker(app, concurrency=2) as broker:
        tasks = [broker.enqueue("count", {"wait": 0.5}) for _ in range(6)]
        results = broker.join(timeout=30)
    assert [r.phase for r in results] == [Phase.SUCCEEDED] * 6
    assert most_at_once == 2
    assert sorted(broker.acked, key=lambda t: t.uid) == sorted(tasks, key=lambda t: t.uid)


def test_a_redelivery_of_a_finished_attempt_is_acked_without_running(
    dispatcher: Dispatcher, sink: Sink
) -> None:
    first, again = Delivery(message("a")), Delivery(message("a"), attempt=2)
    dispatcher.submit(first)
    wait_until(lambda: first.settled == ["ack"])
    dispatcher.submit(again)
    wait_until(lambda: again.settled == ["ack"])
    assert runs == ["a"] and len(sink.terminal("a")) == 1


def test_a_redelivery_while_running_is_adopted_by_the_running_attempt(
    dispatcher: Dispatcher, sink: Sink
) -> None:
    lost = Delivery(message("b", wait=30))  # its connection dies while the handler runs
    dispatcher.submit(lost)
    wait_until(lambda: runs == ["b"])
    redelivered = Delivery(message("b", wait=30), attempt=2)
    dispatcher.submit(redelivered)
    gate.set()
    wait_until(lambda: redelivered.settled == ["ack"])
    # The lost delivery is settled too: the runtime drops a settle on a connection that is
    # gone (and on the live one, below, it must be acked).
    assert lost.settled == ["ack"] and runs == ["b"]
    ((end, _),) = sink.terminal("b")
    assert end.phase is Phase.SUCCEEDED and end.attempt == 1


def test_progress_after_an_adoption_keeps_the_running_attempt(
    dispatcher: Dispatcher, sink: Sink
) -> None:
    # A redelivery after a reconnect comes with x-delivery-count, so its attempt is one
    # higher; the attempt that runs is still the first: progress of a higher attempt would
    # make the operator record a new attempt and ignore this one's end.
    lost = Delivery(message("g", wait=30, progress=50))
    dispatcher.submit(lost)
    wait_until(lambda: runs == ["g"])
    dispatcher.submit(Delivery(lost.message, attempt=2))
    gate.set()
    wait_until(lambda: len(sink.terminal("g")) == 1)
    sent = [(m.phase, m.progress, m.attempt) for m, _ in sink.sent if m.task.uid == "g"]
    assert sent == [
        (Phase.PROCESSING, None, 1),
        (Phase.PROCESSING, 50, 1),
        (Phase.SUCCEEDED, 100, 1),
    ], sent


def test_a_duplicate_published_while_running_is_adopted_and_acked_with_it(
    dispatcher: Dispatcher, sink: Sink
) -> None:
    # The operator published the same task message twice (a crash between publishing and
    # recording it), and both reached this worker on one connection: each delivery holds a
    # prefetch slot until acked, so the running attempt acks both when it ends.
    first = Delivery(message("f", wait=30))
    dispatcher.submit(first)
    wait_until(lambda: runs == ["f"])
    duplicate = Delivery(first.message)
    dispatcher.submit(duplicate)
    assert first.settled == duplicate.settled == []
    gate.set()
    wait_until(lambda: first.settled == duplicate.settled == ["ack"])
    assert runs == ["f"] and len(sink.terminal("f")) == 1


def test_a_new_published_attempt_of_the_same_task_does_run(dispatcher: Dispatcher) -> None:
    # The operator's retry after Error: same uid, TaskMessage.attempt + 1.
    first = Delivery(message("c"))
    dispatcher.submit(first)
    wait_until(lambda: first.settled == ["ack"])
    retry = Delivery(
        TaskMessage(task=first.message.task, queue="count", request={}, attempt=2), attempt=2
    )
    dispatcher.submit(retry)
    wait_until(lambda: retry.settled == ["ack"])
    assert runs == ["c", "c"]


def test_the_ack_waits_for_the_confirm_and_a_failed_report_requeues() -> None:
    sink = Sink(confirm=False)
    d = Dispatcher(app, sink, concurrency=1, tick=0.01)
    d.start()
    try:
        ok, lost = Delivery(message("d")), Delivery(message("e"))
        d.submit(ok)
        d.submit(lost)
        wait_until(lambda: len(sink.terminal("d")) == 1)
        time.sleep(0.1)
        assert ok.settled == [] and d.active == 1 and d.finishing == 1  # slot still held
        sink.terminal("d")[0][1].set_result(None)
        assert ok.settled == ["ack"]
        wait_until(lambda: len(sink.terminal("e")) == 1)
        sink.terminal("e")[0][1].set_exception(RuntimeError("broker said no"))
        assert lost.settled == ["requeue"]
    finally:
        d.stop()


def test_shutdown_requeues_what_waits_and_releases_what_runs(
    dispatcher: Dispatcher, sink: Sink
) -> None:
    running = [Delivery(message(f"r{i}", wait=30)) for i in range(2)]
    waiting = Delivery(message("w"))
    for d in [*running, waiting]:
        dispatcher.submit(d)
    wait_until(lambda: len(runs) == 2)
    assert dispatcher.close_intake() == 1 and waiting.settled == ["requeue"]
    late = Delivery(message("late"))
    dispatcher.submit(late)
    assert late.settled == ["requeue"]
    assert dispatcher.release_running() == 2
    assert [d.settled for d in running] == [["requeue"], ["requeue"]]
    assert dispatcher.active == 0
    gate.set()  # the released handlers return now: nothing may be reported
    wait_until(lambda: running_now == 0)
    time.sleep(0.1)
    assert not [m for m, _ in sink.sent if m.phase.terminal]
    assert [d.settled for d in running] == [["requeue"], ["requeue"]]


def test_deliveries_of_a_lost_connection_that_did_not_start_are_forgotten() -> None:
    d = Dispatcher(app, Sink(), concurrency=1, tick=0.01)
    d.start()
    try:
        blocker, queued = Delivery(message("f", wait=30)), Delivery(message("g"))
        d.submit(blocker)
        wait_until(lambda: runs == ["f"])
        d.submit(queued)
        assert d.pending == 1 and d.forget_pending() == 1 and d.pending == 0
        gate.set()
        wait_until(lambda: blocker.settled == ["ack"])
        time.sleep(0.1)
        assert runs == ["f"] and queued.settled == []
    finally:
        d.stop()


def test_bounded_map_forgets_the_oldest_by_count_and_by_age() -> None:
    now = [0.0]
    m: BoundedMap[str, int] = BoundedMap(capacity=2, max_age=10, clock=lambda: now[0])
    m.put("a", 1)
    m.put("b", 2)
    m.put("c", 3)
    assert "a" not in m and m.get("b") == 2 and len(m) == 2
    now[0] = 5
    m.put("b", 4)  # refreshed: now the newest
    now[0] = 12
    assert m.get("c") is None and m.get("b") == 4
