"""Which task an unreadable dead letter was for, and the Error it ends in (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from asynctask_operator.dead_letters import dead_letter_error, metric_label, wanted_task
from asynctask_worker.messages import TaskRef

HEADERS = {
    "asynctask-uid": "u-1",
    "asynctask-namespace": "team-a",
    "asynctask-name": "t",
    "asynctask-attempt": 2,
}


def test_the_headers_name_the_task_and_attempt() -> None:
    assert wanted_task(HEADERS, None) == (TaskRef(uid="u-1", namespace="team-a", name="t"), 2)
    as_bytes = {k: v.encode() if isinstance(v, str) else v for k, v in HEADERS.items()}
    assert wanted_task(as_bytes, None)[0] == TaskRef(uid="u-1", namespace="team-a", name="t")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"asynctask-uid": 123, "asynctask-namespace": b"\xff", "asynctask-attempt": "one"},
        {"asynctask-uid": ["a"], "asynctask-namespace": {"t": 1}, "asynctask-name": None},
        {**HEADERS, "asynctask-namespace": "Bad NS"},
    ],
)
def test_garbage_headers_fall_back_to_the_message_id(headers: dict[str, Any]) -> None:
    assert wanted_task(headers, "task:u-9:3")[0] == "u-9"
    for garbage in (None, "", "task:::", "task:x:y:z", "status:u:1:2", "\U0001f4a5"):
        assert wanted_task(headers, garbage)[0] is None


def test_the_error_says_who_refused_it_and_why() -> None:
    headers = {"x-asynctask-dead-by": b"worker w1", "x-asynctask-dead-detail": "recursion"}
    reason, text = dead_letter_error("TooDeep", 1, headers)
    assert reason == "MalformedTaskMessage"
    assert text.startswith("worker w1 refused attempt 1's message (TooDeep: recursion)")
    assert dead_letter_error("NoHandler", None, {})[0] == "MessageRejected"
    assert dead_letter_error("delivery_limit", 3, {})[0] == "DeliveryLimitExceeded"


def test_a_reason_nobody_knows_is_counted_as_other() -> None:
    assert metric_label("TooDeep") == "TooDeep" and metric_label("rejected") == "rejected"
    assert metric_label("made-up-by-a-publisher") == "other"
