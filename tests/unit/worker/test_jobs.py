"""Which running jobs are overdue: past their time limit, or past the grace after a stop."""

from __future__ import annotations

from dataclasses import dataclass

from asynctask_worker._runtime.jobs import Job, State, overdue
from asynctask_worker.context import TIMED_OUT, TaskContext
from asynctask_worker.messages import TaskMessage, TaskRef


@dataclass
class _Delivery:
    message: TaskMessage
    attempt: int = 1

    def ack(self) -> None: ...

    def requeue(self) -> None: ...


def job(soft: float | None, hard: float | None = None, state: State = State.RUNNING) -> Job:
    ref = TaskRef(uid="u", namespace="ns", name="t")
    made = Job(
        _Delivery(TaskMessage(task=ref, queue="q")),
        started=0.0,
        soft_deadline=soft,
        hard_deadline=hard,
        state=state,
    )
    made.ctx = TaskContext(ref, 1, "q", lambda percent, message: None)
    return made


def test_a_job_past_its_limit_is_told_once_then_stopped_hard_after_the_grace() -> None:
    late, on_time, no_limit = job(soft=5.0), job(soft=50.0), job(soft=None)
    assert overdue([late, on_time, no_limit], now=10.0) == ([late], [])
    late.ctx._cancel(TIMED_OUT)  # told: not again
    late.hard_deadline = 12.0
    assert overdue([late, on_time, no_limit], now=11.0) == ([], [])
    assert overdue([late, on_time, no_limit], now=12.0) == ([], [late])


def test_jobs_that_are_ending_are_never_overdue() -> None:
    ending = [job(soft=1.0, hard=1.0, state=s) for s in State if s is not State.RUNNING]
    assert overdue(ending, now=100.0) == ([], [])
