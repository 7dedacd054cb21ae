"""Server-sent events as pure functions: where a (re)connected stream starts, event names,
and the wire format."""

from __future__ import annotations

import json

from asynctask_gateway.streams import event_name, on_connect, sse_event
from asynctask_worker.views import TaskView, task_view


def view(rv: str, phase: str | None = None, progress: int = 0) -> TaskView:
    status = {"phase": phase, "progress": progress} if phase else {}
    return task_view(
        {"metadata": {"name": "t", "namespace": "ns", "resourceVersion": rv}, "status": status}
    )


def test_a_new_stream_gets_the_current_state_at_once() -> None:
    assert on_connect(view("5", "Processing"), None) == "send"


def test_resuming_at_the_current_state_repeats_nothing() -> None:
    assert on_connect(view("5", "Processing"), "5") == "wait"


def test_resuming_after_the_end_gets_204() -> None:
    assert on_connect(view("9", "Succeeded"), "9") == "end"


def test_resuming_from_an_older_state_gets_the_current_one() -> None:
    assert on_connect(view("9", "Succeeded"), "5") == "send"
    assert on_connect(view("9", "Processing"), "") == "send"


def test_event_names_are_phases_or_progress() -> None:
    assert event_name(view("1"), None) == "Pending"
    assert event_name(view("2", "Processing"), view("1")) == "Processing"
    assert event_name(view("3", "Processing", 40), view("2", "Processing")) == "progress"
    assert event_name(view("4", "Succeeded", 100), view("3", "Processing", 40)) == "Succeeded"


def test_the_wire_format() -> None:
    raw = sse_event(view("7", "Processing", 40), "progress").decode()
    lines = raw.split("\n")
    assert lines[0] == "id: 7" and lines[1] == "event: progress"
    assert lines[2].startswith("data: ") and raw.endswith("\n\n")
    assert json.loads(lines[2][6:])["progress"] == 40
