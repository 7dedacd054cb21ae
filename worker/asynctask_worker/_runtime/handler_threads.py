"""The threads thread-mode handlers run on, reused from one attempt to the next.

A thread of its own for each attempt cost a thread's start (and its wake-ups) per task;
a no-op task paid more for it than for its handler. A thread that finished an attempt
now waits up to :data:`IDLE_SECONDS` for the next one; there are never more idle threads
than attempts that ran at once. A thread whose handler was *abandoned* (it ignored its
hard stop, :mod:`.execution`) is simply busy until its handler returns: the next attempt
gets another thread, so concurrency is never lost to it.

Each attempt runs in a fresh :mod:`contextvars` context (nothing a handler set in one
leaks into the next) under a thread name that says which attempt it is. Threads are
daemons: an abandoned one must not keep the process alive at exit.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from typing import Final

#: How long an idle handler thread waits for another attempt before it ends.
IDLE_SECONDS: Final = 30.0

Work = Callable[[], None]


class HandlerThreads:
    """Runs each piece of work on an idle thread, or a new one if none is idle."""

    def __init__(self, idle_seconds: float = IDLE_SECONDS) -> None:
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._work: queue.SimpleQueue[tuple[str, Work]] = queue.SimpleQueue()
        #: Idle threads not yet promised a piece of work (guarded by ``_lock``; work is
        #: put under it too, so every piece in ``_work`` has a thread counted for it).
        self._idle = 0

    def run(self, name: str, work: Work) -> None:
        with self._lock:
            if self._idle:
                self._idle -= 1
                self._work.put((name, work))
                return
        threading.Thread(target=self._serve, args=(name, work), daemon=True, name=name).start()

    @property
    def idle(self) -> int:
        with self._lock:
            return self._idle

    def _serve(self, name: str, work: Work) -> None:
        me = threading.current_thread()
        while True:
            me.name = name
            contextvars.Context().run(work)
            me.name = "asynctask-handler-idle"
            with self._lock:
                self._idle += 1
            try:
                name, work = self._work.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    try:  # promised a piece of work just as the wait ended: take it
                        name, work = self._work.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        return
