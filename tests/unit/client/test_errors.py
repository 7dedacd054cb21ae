"""Outcomes become typed exceptions; refusals of either server become ApiError alike."""

from __future__ import annotations

import pytest

from asynctask_client import (
    ApiError,
    TaskCancelled,
    TaskError,
    TaskFailed,
    TaskNotSucceeded,
    TaskTimedOut,
    TaskView,
    WaitTimeout,
)
from asynctask_client.errors import raise_for_outcome
from asynctask_client.http import refusal


def ended(phase: str, **error: str) -> TaskView:
    return TaskView.model_validate(
        {"name": "t", "namespace": "ns", "phase": phase, "done": True, "error": error or None}
    )


@pytest.mark.parametrize(
    ("phase", "kind"),
    [
        ("Failed", TaskFailed),
        ("Error", TaskError),
        ("Cancelled", TaskCancelled),
        ("TimedOut", TaskTimedOut),
    ],
)
def test_each_terminal_phase_raises_its_exception(phase: str, kind: type[Exception]) -> None:
    with pytest.raises(kind) as raised:
        raise_for_outcome(ended(phase, reason="R", message="M"))
    assert isinstance(raised.value, TaskNotSucceeded)
    assert raised.value.reason == "R" and raised.value.message == "M"


def test_success_raises_nothing_and_an_error_keeps_its_traceback() -> None:
    raise_for_outcome(ended("Succeeded"))
    with pytest.raises(TaskError) as raised:
        raise_for_outcome(ended("Error", reason="HandlerError", traceback="Traceback..."))
    assert raised.value.traceback == "Traceback..."
    with pytest.raises(TaskCancelled) as bare:
        raise_for_outcome(ended("Cancelled"))
    assert bare.value.reason == "Cancelled"  # no status.error: the phase names it


def test_a_wait_timeout_is_a_timeout_error_and_not_a_task_outcome() -> None:
    late = WaitTimeout(TaskView(name="t", namespace="ns"), 2)
    assert isinstance(late, TimeoutError) and not isinstance(late, TaskNotSucceeded)
    assert "still Pending after waiting 2 s" in str(late)


def test_problems_and_kubernetes_statuses_become_the_same_api_error() -> None:
    problem = refusal(
        422,
        "application/problem+json",
        {
            "reason": "Invalid",
            "detail": "bad",
            "causes": [{"field": "spec.retries", "message": "too many"}],
        },
    )
    status = refusal(
        422,
        "application/json",
        {
            "kind": "Status",
            "reason": "Invalid",
            "message": "bad",
            "details": {"causes": [{"field": "spec.retries", "message": "too many"}]},
        },
    )
    for error in (problem, status):
        assert isinstance(error, ApiError)
        assert (error.status, error.reason, error.message) == (422, "Invalid", "bad")
        assert str(error) == "422 Invalid: bad (spec.retries: too many)"
    assert refusal(404, "text/plain", {}).reason == "NotFound"
