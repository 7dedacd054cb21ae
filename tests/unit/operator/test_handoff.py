"""Results of the broker's threads reach the event loop in order, many for one wake-up,
with what ``asyncio.wrap_future`` gave: the result, the exception, and cancellation."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from asynctask_operator.broker.handoff import Handoff


async def test_calls_queued_while_a_wake_up_is_on_its_way_ride_along(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop = asyncio.get_running_loop()
    handoff = Handoff(loop)
    wakes: list[object] = []
    real = loop.call_soon_threadsafe

    def counting(callback: Callable[[], object]) -> asyncio.Handle:
        wakes.append(callback)
        return real(callback)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    ran: list[int] = []

    def produce() -> None:  # a thread settling 100 things while the loop is busy
        for i in range(100):
            handoff.call(lambda i=i: ran.append(i))  # type: ignore[misc]

    thread = threading.Thread(target=produce)
    thread.start()
    thread.join()
    assert ran == [] and len(wakes) == 1  # the loop has not run yet: one wake-up
    await asyncio.sleep(0)
    assert ran == list(range(100))  # all of them, in order, in one turn
    handoff.call(lambda: ran.append(100))  # the next one wakes the loop again
    await asyncio.sleep(0)
    assert ran[-1] == 100 and len(wakes) == 2


async def test_a_failing_call_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    handoff = Handoff(asyncio.get_running_loop())
    ran: list[str] = []
    handoff.call(lambda: ran.append("a"))

    def fail() -> None:
        raise ZeroDivisionError

    handoff.call(fail)
    handoff.call(lambda: ran.append("c"))
    await asyncio.sleep(0)
    assert ran == ["a", "c"]
    assert "could not be handed over" in caplog.text


async def test_a_threads_result_and_exception_are_awaited_as_wrap_future_would() -> None:
    handoff = Handoff(asyncio.get_running_loop())
    ok: Future[int] = Future()
    bad: Future[int] = Future()

    def settle() -> None:
        ok.set_result(7)
        bad.set_exception(KeyError("x"))

    threading.Thread(target=settle).start()
    assert await asyncio.wait_for(handoff.result(ok), 10) == 7
    with pytest.raises(KeyError):
        await asyncio.wait_for(handoff.result(bad), 10)
    done: Future[str] = Future()
    done.set_result("already")  # settled before it is awaited
    assert await handoff.result(done) == "already"


async def test_cancelling_the_wait_cancels_a_publish_not_yet_started() -> None:
    handoff = Handoff(asyncio.get_running_loop())
    fut: Future[None] = Future()
    waiting = asyncio.ensure_future(handoff.result(fut))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert fut.cancelled()  # the publisher thread then skips it
    await asyncio.sleep(0)  # its callback reached a waiter already done: nothing happens
