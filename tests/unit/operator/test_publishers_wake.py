"""The publisher pool's wake-ups: a publish queued while every thread sleeps wakes one
thread; publishes queued before it looks, or while a thread lingers (busy), wake none;
a thread whose connection is gone hands its unanswered publishes back, first in line,
and another thread is woken for them. (The threads here are stand-ins: the pool's
bookkeeping alone.)"""

from __future__ import annotations

from concurrent.futures import Future
from typing import Any, cast

from asynctask_operator.broker.publisher import Job, Publisher
from asynctask_operator.broker.publishers import Publishers


class Thread:
    def __init__(self, reachable: bool = True) -> None:
        self.wakes = 0
        self.reachable = reachable

    def wake(self) -> bool:
        self.wakes += 1
        return self.reachable


def pool(*threads: Thread, retries: list[int] | None = None) -> Publishers:
    found = [] if retries is None else retries
    pubs = Publishers(
        "amqp://localhost/",
        size=0,
        heartbeat=0,
        reconnect_max_delay=1,
        on_retry=lambda: found.append(1),
    )
    for thread in threads:
        pubs.joined(cast(Publisher, thread))
    return pubs


def job() -> Job:
    return Job(Future(), lambda channel: None)


def queue(pubs: Publishers, n: int) -> None:
    for _ in range(n):
        pubs.pending.append(job())
        pubs.wake()


def me(thread: Thread) -> Any:
    return cast(Publisher, thread)


def test_one_wake_up_for_all_queued_before_the_thread_looks() -> None:
    a, b = Thread(), Thread()
    pubs = pool(a, b)
    queue(pubs, 5)
    assert (a.wakes, b.wakes) == (1, 0)
    pubs.looked(me(a))  # a takes the five; the next publish wakes a thread again
    queue(pubs, 3)
    assert (a.wakes, b.wakes) == (1, 1)  # in turn


def test_a_lingering_thread_takes_what_comes_without_a_wake_up() -> None:
    a = Thread()
    pubs = pool(a)
    pubs.looked(me(a))
    assert pubs.lingers(me(a))
    queue(pubs, 10)
    assert a.wakes == 0
    pubs.looked(me(a))  # it looked: no longer lingering, the next publish wakes it
    queue(pubs, 1)
    assert a.wakes == 1


def test_a_thread_woken_already_makes_another_not_linger() -> None:
    a, b = Thread(), Thread()
    pubs = pool(a, b)
    queue(pubs, 1)  # a is woken
    assert not pubs.lingers(me(b))
    assert pubs.lingers(me(a))


def test_no_thread_serving_no_wake_up_the_queue_waits() -> None:
    pubs = pool()
    queue(pubs, 2)
    assert len(pubs.pending) == 2
    a = Thread()
    pubs.joined(me(a))  # a connected thread looks at the queue before it sleeps
    assert a.wakes == 0


def test_a_thread_that_cannot_be_woken_does_not_block_later_wake_ups() -> None:
    a = Thread(reachable=False)
    pubs = pool(a)
    queue(pubs, 2)
    assert a.wakes == 2  # the first wake-up failed: the next publish tries again


def test_a_lost_connection_hands_its_publishes_back_first_and_wakes_another() -> None:
    a, b = Thread(), Thread()
    retries: list[int] = []
    pubs = pool(a, b, retries=retries)
    queue(pubs, 1)  # wakes a
    waiting = pubs.pending.popleft()
    unanswered = [job(), job()]
    pubs.pending.append(waiting)
    pubs.left(me(a), unanswered)
    assert list(pubs.pending) == [*unanswered, waiting]
    assert len(retries) == 2
    assert b.wakes == 1  # a's wake-up was void: b is woken for them
    queue(pubs, 1)
    assert (a.wakes, b.wakes) == (1, 1)  # a left: never woken again; b is woken already


def test_a_stopping_pool_sends_nothing_again() -> None:
    a = Thread()
    retries: list[int] = []
    pubs = pool(a, retries=retries)
    pubs.stop()
    pubs.left(me(a), [job()])
    assert (len(pubs.pending), retries) == (0, [])
