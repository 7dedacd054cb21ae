"""OperatorMetrics: what a status write counts."""

from __future__ import annotations

from asynctask_operator.metrics import OperatorMetrics
from asynctask_worker import __version__


def test_phase_changes_are_counted_once_with_their_durations() -> None:
    m = OperatorMetrics()
    pending = {"phase": "Pending", "queuedTime": "2026-01-01T00:00:00Z"}
    running = {**pending, "phase": "Processing", "attempts": 1, "startTime": "2026-01-01T00:00:04Z"}
    progressed = {**running, "progress": 50}
    done = {**running, "phase": "Succeeded", "completionTime": "2026-01-01T00:01:04Z"}
    m.phase_written("q", {}, pending)
    m.phase_written("q", pending, running)
    m.phase_written("q", running, progressed)  # progress only: no transition
    m.phase_written("q", progressed, done)
    assert m.value("asynctask_operator_phase_transitions_total", queue="q", phase="Processing") == 1
    assert m.value("asynctask_operator_phase_transitions_total", queue="q", phase="Succeeded") == 1
    assert m.value("asynctask_operator_task_wait_seconds_sum", queue="q") == 4
    assert m.value("asynctask_operator_task_run_seconds_sum", queue="q", phase="Succeeded") == 60


def test_a_new_attempt_in_the_same_phase_is_a_transition() -> None:
    m = OperatorMetrics()
    first = {"phase": "Processing", "attempts": 1}
    m.phase_written("q", {"phase": "Pending"}, first)
    m.phase_written("q", first, {"phase": "Processing", "attempts": 2})
    assert m.value("asynctask_operator_phase_transitions_total", queue="q", phase="Processing") == 2


def test_sizes_are_read_when_scraped() -> None:
    m = OperatorMetrics()
    tasks: dict[str, int] = {}
    m.watch_sizes(lambda: len(tasks), lambda: 7)
    tasks["a"] = 1
    assert m.value("asynctask_operator_tasks_tracked") == 1
    assert m.value("asynctask_operator_deadlines_pending") == 7


def test_the_build_info_carries_the_one_version() -> None:
    metrics = OperatorMetrics()
    assert metrics.value("asynctask_build_info", version=__version__) == 1.0
    assert metrics.value("asynctask_build_info", version="0.0.0") == 0.0
