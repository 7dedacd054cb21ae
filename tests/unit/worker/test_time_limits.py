"""A task's time limit counts from the moment its handler starts, never from before.

The process pool is where it shows: a child process takes a while to start, and a limit
counted from the delivery would tell the handler to stop before it ran its full time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from asynctask_worker import App, Phase, TaskContext
from asynctask_worker._runtime.dispatch import Dispatcher
from asynctask_worker.messages import TaskMessage, TaskRef
from tests.unit.worker.test_dispatch import Delivery, Sink, wait_until

app = App("unit-time-limits")


@app.task("stopwatch")
def stopwatch(request: dict[str, Any], ctx: TaskContext) -> None:
    """Runs until told to stop; writes when it began and when it was told (monotonic clock,
    one for every process of the machine)."""
    began = time.monotonic()
    while not ctx.cancelled and time.monotonic() - began < 30:
        time.sleep(0.001)
    told = time.monotonic()
    Path(request["record"]).write_text(json.dumps({"began": began, "told": told}))


@pytest.fixture(params=["process", "thread"])
def dispatcher(request: pytest.FixtureRequest, sink: Sink) -> Iterator[Dispatcher]:
    d = Dispatcher(app, sink, concurrency=1, pool=request.param, tick=0.01, cancel_grace_seconds=5)
    d.start()
    yield d
    d.stop()


@pytest.fixture
def sink() -> Sink:
    return Sink()


def test_the_handler_runs_its_whole_time_limit_before_it_is_told_to_stop(
    dispatcher: Dispatcher, sink: Sink, tmp_path: Path
) -> None:
    ref = TaskRef(uid="t1", namespace="ns", name="t1")
    record = tmp_path / "stopwatch.json"
    delivery = Delivery(
        TaskMessage(task=ref, queue="stopwatch", request={"record": str(record)}, timeout_seconds=1)
    )
    dispatcher.submit(delivery)
    wait_until(lambda: delivery.settled == ["ack"], timeout=30)
    ((end, _),) = sink.terminal("t1")
    assert end.phase is Phase.TIMED_OUT
    times = json.loads(record.read_text())
    assert times["told"] - times["began"] >= 1.0
