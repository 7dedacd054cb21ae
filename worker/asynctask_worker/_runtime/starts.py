"""Withholding an attempt's start report for a short window (pure, clock injected).

Every attempt used to cost three persistent messages: the task, its ``Processing`` and its
end. Most tasks end within milliseconds, and the operator folds a ``Processing`` followed
at once by the end into one status write anyway, so the ``Processing`` message buys
nothing for them. The status publisher therefore holds an attempt's ``Processing`` for
``start_report_seconds`` (``ASYNCTASK_WORKER_START_REPORT_SECONDS``):

* the attempt ends within the window: the ``Processing`` is dropped and the terminal
  message carries its time as ``started_at`` (so ``status.startTime`` stays right);
* it is still running when the window ends: the ``Processing`` goes out then, with its
  ``at`` the handler's start (so ``spec.timeoutSeconds`` counts from the real start);
* it reports progress within the window: the progress is held too, and goes out after the
  ``Processing`` when the window ends (a progress message implies the attempt started), or
  not at all if the attempt ends first (its end carries the final word, as ever).

A window of 0 sends every ``Processing`` at once, as before. The window is bounded
(:data:`MAX_START_REPORT_SECONDS`): the operator waits that long, plus a margin, for a
worker's word before it records a task cancelled before it started
(``docs/protocol.md``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Generic, TypeVar

from asynctask_worker.messages import MAX_START_REPORT_SECONDS

__all__ = ["DEFAULT_START_REPORT_SECONDS", "MAX_START_REPORT_SECONDS", "StartReports"]

#: The default window: most short tasks end within it; a longer one is seen as Processing
#: 50 ms late.
DEFAULT_START_REPORT_SECONDS: Final = 0.05

K = TypeVar("K")
T = TypeVar("T")


@dataclass
class _Held(Generic[T]):
    start: T
    due: float


class StartReports(Generic[K, T]):
    """The start reports held back, by attempt (not thread-safe: one thread owns it)."""

    def __init__(self, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 <= window <= MAX_START_REPORT_SECONDS:
            raise ValueError(f"a start window is 0 to {MAX_START_REPORT_SECONDS}s, not {window}")
        self.window = window
        self._clock = clock
        self._held: dict[K, _Held[T]] = {}

    def hold(self, key: K, start: T) -> bool:
        """An attempt started: True if its report is held (send nothing now), False if it
        is to be sent at once (no window)."""
        if self.window <= 0:
            return False
        self._held[key] = _Held(start, self._clock() + self.window)
        return True

    def take(self, key: K) -> T | None:
        """The attempt's held start, no longer held: for its end, which then carries the
        start's time instead."""
        held = self._held.pop(key, None)
        return None if held is None else held.start

    def due(self, force: bool = False) -> list[tuple[K, T]]:
        """The held starts whose window has passed (every one if ``force``), in the order
        they were held, no longer held."""
        now = self._clock()
        out: list[tuple[K, T]] = []
        for key, held in self._held.items():  # held in order, one window for all: due first
            if not force and held.due > now:
                break
            out.append((key, held.start))
        for key, _ in out:
            del self._held[key]
        return out

    def next_due_in(self) -> float | None:
        """Seconds until the next held start is due (0 if one is), or None if none is."""
        if not self._held:
            return None
        first = next(iter(self._held.values()))  # held in order, one window for all
        return max(0.0, first.due - self._clock())

    def __contains__(self, key: object) -> bool:
        return key in self._held

    def __len__(self) -> int:
        return len(self._held)
