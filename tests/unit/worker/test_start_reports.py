"""The start window's decisions (:mod:`asynctask_worker._runtime.starts`), on a fake clock."""

from __future__ import annotations

import pytest

from asynctask_worker._runtime.starts import MAX_START_REPORT_SECONDS, StartReports
from asynctask_worker.settings import WorkerSettings


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_start_is_held_for_the_window_then_due() -> None:
    clock = Clock()
    starts: StartReports[str, str] = StartReports(0.05, clock)
    assert starts.hold("a", "start-a")
    assert starts.due() == [] and starts.next_due_in() == pytest.approx(0.05)
    clock.now += 0.049
    assert starts.due() == []
    clock.now += 0.001
    assert starts.due() == [("a", "start-a")]
    assert starts.due() == [] and starts.next_due_in() is None and len(starts) == 0


def test_an_attempt_that_ends_within_the_window_takes_its_start_and_nothing_is_due() -> None:
    clock = Clock()
    starts: StartReports[str, str] = StartReports(0.05, clock)
    starts.hold("a", "start-a")
    clock.now += 0.01
    assert starts.take("a") == "start-a"  # the end carries it
    clock.now += 1
    assert starts.due() == []
    assert starts.take("a") is None  # taken once


def test_only_the_starts_whose_window_passed_are_due_in_the_order_they_were_held() -> None:
    clock = Clock()
    starts: StartReports[str, str] = StartReports(0.1, clock)
    starts.hold("a", "A")
    clock.now += 0.04
    starts.hold("b", "B")
    clock.now += 0.04
    starts.hold("c", "C")
    clock.now += 0.03  # a is 0.11 old, b 0.07, c 0.03
    assert starts.due() == [("a", "A")]
    assert starts.next_due_in() == pytest.approx(0.03)
    clock.now += 0.03
    assert starts.due() == [("b", "B")]
    assert starts.due(force=True) == [("c", "C")]  # a stop sends what is held


def test_a_window_of_zero_holds_nothing() -> None:
    starts: StartReports[str, str] = StartReports(0.0, Clock())
    assert not starts.hold("a", "A")
    assert len(starts) == 0 and starts.next_due_in() is None


@pytest.mark.parametrize("window", [-0.01, MAX_START_REPORT_SECONDS + 0.01])
def test_a_window_outside_its_bounds_is_refused(window: float) -> None:
    with pytest.raises(ValueError, match="a start window is 0 to"):
        StartReports(window, Clock())


def test_the_worker_setting_defaults_to_a_short_window_and_is_bounded_as_the_runtime_is(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert 0.05 <= WorkerSettings().start_report_seconds <= 0.1
    monkeypatch.setenv("ASYNCTASK_WORKER_START_REPORT_SECONDS", "0")
    assert WorkerSettings().start_report_seconds == 0
    monkeypatch.setenv("ASYNCTASK_WORKER_START_REPORT_SECONDS", str(MAX_START_REPORT_SECONDS))
    assert WorkerSettings().start_report_seconds == MAX_START_REPORT_SECONDS
    monkeypatch.setenv("ASYNCTASK_WORKER_START_REPORT_SECONDS", "0.6")
    with pytest.raises(ValueError, match=r"less than or equal to 0\.5"):
        WorkerSettings()
