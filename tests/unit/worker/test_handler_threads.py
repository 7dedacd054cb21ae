"""Thread-mode handler threads, reused from one attempt to the next (``handler_threads.py``)."""

from __future__ import annotations

import contextvars
import threading

from asynctask_worker._runtime.handler_threads import HandlerThreads

WAIT = 10.0  # generous: the box is shared; each wait ends as soon as its event is set


def run_and_wait(threads: HandlerThreads, name: str = "w") -> tuple[int, str]:
    """Run one piece of work; the thread it ran on and that thread's name meanwhile."""
    done = threading.Event()
    seen: list[tuple[int, str]] = []

    def work() -> None:
        me = threading.current_thread()
        seen.append((threading.get_ident(), me.name))
        done.set()

    threads.run(name, work)
    assert done.wait(WAIT)
    return seen[0]


def wait_idle(threads: HandlerThreads, n: int) -> None:
    ok = threading.Event()
    for _ in range(int(WAIT / 0.01)):
        if threads.idle == n:
            ok.set()
            break
        ok.wait(0.01)
    assert threads.idle == n


def test_a_finished_thread_takes_the_next_attempt_under_its_name() -> None:
    threads = HandlerThreads()
    first, name1 = run_and_wait(threads, "asynctask-task-ns/a#1")
    wait_idle(threads, 1)
    second, name2 = run_and_wait(threads, "asynctask-task-ns/b#1")
    assert first == second
    assert (name1, name2) == ("asynctask-task-ns/a#1", "asynctask-task-ns/b#1")


def test_a_busy_thread_is_not_waited_for_another_one_starts() -> None:
    """An abandoned handler (it ignored its hard stop) keeps its thread: the next attempt
    gets another one at once."""
    threads = HandlerThreads()
    release = threading.Event()
    stuck = threading.Event()
    stuck_on: list[int] = []

    def ignores_everything() -> None:
        stuck_on.append(threading.get_ident())
        stuck.set()
        release.wait(WAIT)

    threads.run("stuck", ignores_everything)
    assert stuck.wait(WAIT)
    try:
        other, _ = run_and_wait(threads)  # would hang if it waited for the stuck thread
    finally:
        release.set()
    assert other != stuck_on[0]
    wait_idle(threads, 2)  # both idle once the stuck handler returned


def test_an_idle_thread_ends_after_its_idle_time() -> None:
    threads = HandlerThreads(idle_seconds=0.05)
    ident, _ = run_and_wait(threads)
    wait_idle(threads, 1)
    wait_idle(threads, 0)  # it ended
    assert not any(t.ident == ident for t in threading.enumerate())


def test_nothing_a_handler_sets_in_a_context_variable_reaches_the_next_one() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    threads = HandlerThreads()
    seen: list[str] = []
    done = threading.Event()

    def first() -> None:
        var.set("first's")
        done.set()

    def second() -> None:
        seen.append(var.get())
        done.set()

    threads.run("a", first)
    assert done.wait(WAIT)
    wait_idle(threads, 1)
    done.clear()
    threads.run("b", second)
    assert done.wait(WAIT)
    assert seen == ["unset"]
