"""The record of a new task's publish waits longer while the apiserver is busy: the decision
(:class:`record_hold.RecordHold`, pure) and the writer that follows it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asynctask_operator.record_hold import BUSY_WRITES, MIN_EXTENSION, RecordHold
from asynctask_worker.messages import Phase
from tests.unit.operator.test_lanes import delivery
from tests.unit.operator.test_tracking import Harness, until

# the decision -----------------------------------------------------------------------------

HOLD = RecordHold(window=1.0, cap=10.0)
EXTENDED = "asynctask_operator_records_held_longer_total"


def test_an_idle_writer_writes_the_record_at_the_windows_end() -> None:
    for in_flight in range(BUSY_WRITES):
        assert HOLD.extension(1.0, in_flight) == 0.0


def test_a_busy_writer_holds_the_record_one_window_more() -> None:
    assert HOLD.extension(1.0, BUSY_WRITES) == 1.0
    assert HOLD.extension(5.0, 500) == 1.0


def test_the_hold_never_passes_its_cap() -> None:
    assert HOLD.extension(9.5, 500) == pytest.approx(0.5)  # up to the cap, not past it
    assert HOLD.extension(10.0, 500) == 0.0
    assert HOLD.extension(10.0 - MIN_EXTENSION / 2, 500) == 0.0  # not worth a timer
    assert HOLD.extension(12.0, 500) == 0.0  # a late timer: written at once


def test_a_cap_within_the_window_never_extends() -> None:
    for cap in (0.0, 0.5, 1.0):
        assert RecordHold(window=1.0, cap=cap).extension(1.0, 500) == 0.0


# the writer -------------------------------------------------------------------------------


class Busy:
    """A harness whose tasks named ``busy-*`` have their status writes stalled (sent, no
    answer yet) until :meth:`release`: the writer then has that many writes in flight."""

    def __init__(self, fold: float, fold_max: float) -> None:
        self.h = Harness(fold=fold, fold_max=fold_max)
        self._open = asyncio.Event()
        self._stalls: list[asyncio.Task[None]] = []
        self.stalled = 0  # writes waiting for their answer now
        write = self.h.api.replace_status

        async def stalled(ns: str, name: str, uid: str, status: dict[str, Any]) -> dict[str, Any]:
            if name.startswith("busy-"):
                self.stalled += 1
                await self._open.wait()
                self.stalled -= 1
            return await write(ns, name, uid, status)

        self.h.api.replace_status = stalled  # type: ignore[method-assign, assignment]

    async def stall(self, writes: int) -> None:
        """``writes`` status writes in flight (tasks with a webhook: recorded at once)."""
        for i in range(writes):
            body = self.h.create(f"busy-{i}", webhook={"url": "http://kubernetes/h"})
            self._stalls.append(asyncio.create_task(self.h.tracker.observe(body)))
        await asyncio.sleep(0.01)  # each is now waiting for its answer

    async def release(self) -> None:
        self._open.set()
        await asyncio.gather(*self._stalls)

    def t1_phases(self) -> list[str]:
        return [str(w.get("phase")) for w in self.h.api.writes if "busy" not in str(w)]


@pytest.fixture
async def busy() -> AsyncIterator[Busy]:
    b = Busy(fold=0.2, fold_max=5.0)
    yield b
    await b.release()
    await b.h.logic.webhooks.close()


async def test_a_busy_writer_keeps_the_record_for_the_tasks_end(busy: Busy) -> None:
    h = busy.h
    await busy.stall(BUSY_WRITES)
    await h.tracker.observe(h.create())
    published = time.monotonic()
    task = h.tracker.table.get("uid-t1")
    assert task is not None
    await until(lambda: task.record_at - published > 0.3)  # extended past its 0.2 s window
    assert task.recorded is not None and h.api.writes == []  # nothing written meanwhile
    await until(lambda: task.record_at - published > 0.5)  # and once more
    assert h.metrics.value(EXTENDED) == 1  # a task, however many more windows
    # a start coming now lingers in its lane until then (inbox.linger), not 50 ms
    assert h.inbox.linger([delivery(Phase.PROCESSING)]) > 0.1


async def test_the_end_carries_a_record_held_past_its_window(busy: Busy) -> None:
    h = busy.h
    await busy.stall(BUSY_WRITES)
    await h.tracker.observe(h.create())
    task = h.tracker.table.get("uid-t1")
    assert task is not None
    await asyncio.sleep(0.5)  # two and a half windows: still held, the writer busy
    assert task.recorded is not None and h.api.writes == []
    await h.send(Phase.SUCCEEDED)  # the end: one write, with the record in it
    [written] = h.api.writes
    assert written["phase"] == "Succeeded" and written["messageId"] == "task:uid-t1:1"
    assert written["queuedTime"] == task.status["queuedTime"]


async def test_the_record_is_written_once_the_writer_is_idle_again(busy: Busy) -> None:
    h = busy.h
    await busy.stall(BUSY_WRITES)
    await h.tracker.observe(h.create())
    await asyncio.sleep(0.3)
    assert h.api.writes == []
    await busy.release()
    await until(lambda: busy.t1_phases() == ["Pending"])  # at the next window's end
    assert busy.t1_phases() == ["Pending"]
    assert h.metrics.value(EXTENDED) == 1


async def test_a_record_is_written_at_its_cap_however_busy_the_writer() -> None:
    b = Busy(fold=0.1, fold_max=0.4)
    h = b.h
    await b.stall(BUSY_WRITES * 2)
    await h.tracker.observe(h.create())
    began = time.monotonic()
    await until(lambda: b.t1_phases() == ["Pending"])
    assert time.monotonic() - began >= 0.3  # held past its window, written by the cap
    await b.release()
    await h.logic.webhooks.close()


async def test_a_graceful_stop_writes_records_held_under_load(busy: Busy) -> None:
    h = busy.h
    await busy.stall(BUSY_WRITES)
    await h.tracker.observe(h.create())
    await asyncio.sleep(0.3)
    assert await h.logic.writer.record_all() == 1
    assert busy.t1_phases() == ["Pending"]


async def test_a_graceful_stop_writes_the_held_records_side_by_side() -> None:
    """Under load up to publish_fold_max_seconds of publishes are held: a stop writes them
    several at a time, not one after the other's answer."""
    b = Busy(fold=5.0, fold_max=5.0)
    h = b.h
    for i in range(3):
        await h.tracker.observe(h.create(f"busy-{i}"))  # held: their writes will stall
    stopping = asyncio.create_task(h.logic.writer.record_all())
    await until(lambda: b.stalled == 3)  # all three sent before any answer came
    await b.release()
    assert await stopping == 3
    assert h.phases() == ["Pending"] * 3
    await h.logic.webhooks.close()
