"""The task view: one pure function over an AsyncTask's metadata and status."""

from __future__ import annotations

from typing import Any

from asynctask_worker.messages import Phase
from asynctask_worker.views import TaskView, task_view

META = {
    "name": "t1",
    "namespace": "ns",
    "uid": "u-1",
    "resourceVersion": "42",
    "creationTimestamp": "2026-11-24T10:00:00Z",
}


def obj(**status: Any) -> dict[str, Any]:
    return {
        "metadata": META,
        "spec": {"queue": "q", "request": {"big": "x" * 10}},
        "status": status,
    }


def test_a_task_not_yet_queued_is_pending_and_not_done() -> None:
    view = task_view({"metadata": META, "spec": {"queue": "q"}})
    assert view.phase is Phase.PENDING and not view.done
    assert view.progress == 0 and view.attempts == 0 and view.result is None
    assert view.created_at == "2026-11-24T10:00:00Z" and view.resource_version == "42"


def test_a_succeeded_task_is_done_with_its_result() -> None:
    view = task_view(
        obj(
            phase="Succeeded",
            progress=100,
            result={"ok": 1},
            attempts=1,
            startTime="2026-11-24T10:00:01Z",
            completionTime="2026-11-24T10:00:02Z",
        )
    )
    assert view.done and view.result == {"ok": 1} and view.error is None
    assert view.start_time == "2026-11-24T10:00:01Z"
    assert view.completion_time == "2026-11-24T10:00:02Z"


def test_every_terminal_phase_is_done_and_carries_its_error() -> None:
    for phase in ("Failed", "Error", "Cancelled", "TimedOut"):
        view = task_view(obj(phase=phase, error={"reason": "R", "message": "m", "traceback": "tb"}))
        assert view.done and view.phase.value == phase
        assert view.error is not None and view.error.reason == "R"
    for phase in ("Pending", "Processing"):
        assert not task_view(obj(phase=phase)).done


def test_an_unknown_phase_reads_as_pending() -> None:
    assert task_view(obj(phase="Sleeping")).phase is Phase.PENDING


def test_the_wire_form_has_exactly_the_documented_fields() -> None:
    wire = task_view(obj(phase="Processing", progress=40, message="half")).to_json()
    assert list(wire) == [
        "name",
        "namespace",
        "uid",
        "phase",
        "done",
        "progress",
        "message",
        "result",
        "error",
        "attempts",
        "createdAt",
        "startTime",
        "completionTime",
        "resourceVersion",
        "queue",
        "notBefore",
        "priority",
        "reason",
        "resultRef",
        "requestRef",
        "archived",
    ]
    assert wire["archived"] is False  # a live task's view; the history archive's say true
    assert wire["phase"] == "Processing" and wire["progress"] == 40 and wire["queue"] == "q"
    # A client reads it back into the same model (a Python client shares it).
    assert TaskView.model_validate(wire) == task_view(
        obj(phase="Processing", progress=40, message="half")
    )


def test_the_request_is_never_part_of_the_view() -> None:
    assert "request" not in task_view(obj(phase="Processing")).to_json()


def test_a_delayed_task_shows_its_due_time() -> None:
    body = obj(phase="Pending", message="scheduled for 2030-01-01T12:00:00Z")
    body["spec"]["notBefore"] = "2030-01-01T12:00:00Z"
    view = task_view(body)
    assert (
        view.not_before == "2030-01-01T12:00:00Z" and view.to_json()["notBefore"] == view.not_before
    )
    assert task_view(obj(phase="Pending")).not_before is None


def test_a_held_task_shows_its_priority_and_why_it_is_held() -> None:
    held = {
        "metadata": META,
        "spec": {"queue": "q", "priority": 50},
        "status": {"phase": "Pending", "reason": "Paused", "message": "the queue q is paused"},
    }
    view = task_view(held)
    assert view.priority == 50 and view.reason == "Paused"
    assert task_view(obj(phase="Pending")).priority == 0
    assert task_view(obj(phase="Pending")).reason is None


REF = {
    "bucket": "tasks",
    "key": "asynctask/ns/uid-1/result",
    "size": 10_485_760,
    "contentType": "image/png",
    "sha256": "ab" * 32,
}


def test_a_stored_result_is_in_the_view_by_its_ref() -> None:
    view = task_view(obj(phase="Succeeded", resultRef=REF))
    assert view.result is None and view.result_ref is not None
    assert view.result_ref.size == 10_485_760 and view.result_ref.content_type == "image/png"
    assert view.to_json()["resultRef"] == REF


def test_a_result_ref_counts_only_once_the_task_succeeded() -> None:
    assert task_view(obj(phase="Processing", resultRef=REF)).result_ref is None


def test_an_unreadable_ref_leaves_the_view_readable() -> None:
    view = task_view(obj(phase="Succeeded", resultRef={"bucket": "x"}))
    assert view.phase is Phase.SUCCEEDED and view.result_ref is None
