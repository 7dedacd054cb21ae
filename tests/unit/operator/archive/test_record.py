"""The archive's rows, decided without a database: which objects are archived, their
columns, and the payloads jsonb would refuse kept exactly as text."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from asynctask_operator.archive.record import (
    JSONB_MAX_DEPTH,
    decode,
    depth,
    encode,
    finished_at,
    record_of,
)


def body(phase: str = "Failed", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": "t",
            "uid": "u-1",
            "labels": {"app": "a"},
            "annotations": {"asynctask.dev/created-by": "system:serviceaccount:ns:ci"},
            "creationTimestamp": "2026-12-05T10:00:00Z",
        },
        "spec": {"queue": "q", "priority": 5, "request": {"x": 1}, "retries": 2},
        "status": {
            "phase": phase,
            "attempts": 3,
            "worker": "w-7",
            "error": {"reason": "ValueError", "message": "bad", "traceback": "Traceback..."},
            "queuedTime": "2026-12-05T10:00:01.5Z",
            "startTime": "2026-12-05T10:00:02Z",
            "completionTime": "2026-12-05T10:00:09.25Z",
            **status,
        },
    }


def test_a_terminal_task_becomes_one_whole_row() -> None:
    record = record_of(body())
    assert record is not None
    assert (record.uid, record.namespace, record.name, record.queue) == ("u-1", "ns", "t", "q")
    assert (record.phase, record.reason, record.priority, record.attempts) == (
        "Failed",
        "ValueError",
        5,
        3,
    )
    assert record.creator == "system:serviceaccount:ns:ci"
    assert record.worker == "w-7"
    assert record.finished_at == datetime(2026, 12, 5, 10, 0, 9, 250000, tzinfo=UTC)
    assert record.queued_at == datetime(2026, 12, 5, 10, 0, 1, 500000, tzinfo=UTC)
    assert record.request == '{"x":1}' and record.spec == '{"queue":"q","priority":5,"retries":2}'
    assert record.error is not None and "traceback" in record.error
    assert record.status is not None and "error" not in record.status  # kept apart
    assert record.labels == '{"app":"a"}'


@pytest.mark.parametrize("phase", ["Pending", "Processing", "", None])
def test_a_live_task_is_not_archived(phase: str | None) -> None:
    assert record_of(body(phase)) is None  # type: ignore[arg-type]


def test_without_completion_time_the_last_status_time_keys_the_row() -> None:
    b = body(completionTime=None, lastUpdateTime="2026-12-05T11:00:00Z")
    assert finished_at(b) == datetime(2026, 12, 5, 11, 0, tzinfo=UTC)
    b["status"].pop("lastUpdateTime")
    assert finished_at(b) == datetime(2026, 12, 5, 10, 0, tzinfo=UTC)  # its creation


@pytest.mark.parametrize(
    "value",
    [{"a": "nul\x00"}, ["\x00"], {"\x00": 1}, "\ud800", {"s": "x\udfff"}],
)
def test_what_jsonb_refuses_goes_to_text_and_reads_back_equal(value: Any) -> None:
    jsonb, text = encode(value)
    assert jsonb is None and text is not None and text.isascii()
    assert decode(None, text) == value


def test_too_deep_goes_to_text_and_shallow_stays_jsonb() -> None:
    deep: Any = 1
    for _ in range(JSONB_MAX_DEPTH + 1):
        deep = [deep]
    assert depth(deep) == JSONB_MAX_DEPTH + 1
    assert encode(deep)[0] is None and decode(None, encode(deep)[1]) == deep
    assert encode({"a": [1, {"b": "é"}]}) == ('{"a":[1,{"b":"\\u00e9"}]}', None)
    assert encode(None) == (None, None)


@pytest.mark.parametrize(
    ("value", "expected"), [(1, 0), ([], 1), ({"a": {}}, 2), ([[1], [[2]]], 3)]
)
def test_depth_counts_levels_of_nesting(value: Any, expected: int) -> None:
    assert depth(value) == expected
