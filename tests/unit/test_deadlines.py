"""The single deadline scheduler: order, replacement, clearing, failures retried."""

from __future__ import annotations

import asyncio
import time

from asynctask_operator.deadlines import Deadlines, Kind


async def test_fires_in_time_order_only_the_latest_setting() -> None:
    fired: list[tuple[str, Kind]] = []
    done = asyncio.Event()

    async def fire(uid: str, kind: Kind) -> None:
        fired.append((uid, kind))
        if uid == "last":
            done.set()

    d = Deadlines(fire)
    base = time.time()
    d.set("b", Kind.RUN_TIMEOUT, base + 0.10)
    d.set("a", Kind.RUN_TIMEOUT, base + 0.05)
    d.set("c", Kind.TTL, base + 0.01)
    d.set("c", Kind.TTL, base + 0.15)      # replaced: fires once, later
    d.set("gone", Kind.RETRY, base + 0.02)
    d.clear("gone")
    d.set("last", Kind.RETRY, base + 0.2)
    runner = asyncio.create_task(d.run())
    await asyncio.wait_for(done.wait(), 5)
    runner.cancel()
    assert fired == [("a", Kind.RUN_TIMEOUT), ("b", Kind.RUN_TIMEOUT), ("c", Kind.TTL),
                     ("last", Kind.RETRY)]
    assert len(d) == 0


async def test_an_earlier_deadline_wakes_the_sleeping_scheduler() -> None:
    fired = asyncio.Event()

    async def fire(uid: str, kind: Kind) -> None:
        fired.set()

    d = Deadlines(fire)
    d.set("far", Kind.TTL, time.time() + 3600)
    runner = asyncio.create_task(d.run())
    await asyncio.sleep(0.05)
    d.set("near", Kind.RETRY, time.time() + 0.05)
    await asyncio.wait_for(fired.wait(), 5)
    runner.cancel()
    assert d.due("far", Kind.TTL) is not None


async def test_a_failing_deadline_is_retried_not_lost() -> None:
    calls = 0
    now = [1000.0]

    async def fire(uid: str, kind: Kind) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("apiserver unavailable")

    d = Deadlines(fire, clock=lambda: now[0])
    d.set("x", Kind.RUN_TIMEOUT, 999.0)
    runner = asyncio.create_task(d.run())
    await asyncio.sleep(0.05)
    runner.cancel()
    assert calls == 1
    assert d.due("x", Kind.RUN_TIMEOUT) == 1005.0


def test_many_tasks_are_cheap() -> None:
    async def fire(uid: str, kind: Kind) -> None:
        return None

    d = Deadlines(fire)
    for r in range(5):  # every deadline set five times: 400k stale heap entries, unless
        for i in range(100_000):  # they are compacted away
            d.set(f"task-{i}", Kind.RUN_TIMEOUT, 10_000.0 + r * 100_000 + i)
    assert len(d) == 100_000
    assert len(d._heap) <= 4 * len(d)
    assert d.due("task-7", Kind.RUN_TIMEOUT) == 10_000.0 + 4 * 100_000 + 7
