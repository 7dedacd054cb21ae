"""The CloudEvents of webhooks: shape, types, deterministic ids."""

from __future__ import annotations

import json

import pytest

from asynctask_operator.webhooks.cloudevents import build_event, encode_event, event_id
from asynctask_worker.messages import Phase
from tests.unit.operator.fakes import REF, status

# the event ---------------------------------------------------------------------------


def test_event_is_a_structured_cloudevent_with_the_task_in_data() -> None:
    s = status("Succeeded", progress=100, result={"url": "s3://x"}, message="done")
    event = build_event(REF, s)
    assert event["specversion"] == "1.0"
    assert event["id"] == f"{REF.uid}.1.succeeded"
    assert event["source"] == "/apis/asynctask.dev/v1alpha1/namespaces/team-a/asynctasks/resize-1"
    assert event["type"] == "dev.asynctask.task.succeeded"
    assert event["subject"] == "resize-1"
    assert event["time"] == "2030-01-02T03:04:05Z"
    assert event["datacontenttype"] == "application/json"
    assert event["data"] == {
        "name": "resize-1",
        "namespace": "team-a",
        "uid": REF.uid,
        "phase": "Succeeded",
        "attempt": 1,
        "attempts": 1,
        "progress": 100,
        "message": "done",
        "result": {"url": "s3://x"},
        "resultRef": None,
        "error": None,
        "lastError": None,
        "nextAttemptTime": None,
    }
    assert json.loads(encode_event(event)) == event


@pytest.mark.parametrize("phase", list(Phase))
def test_every_phase_has_its_own_type(phase: Phase) -> None:
    event = build_event(REF, status(phase.value))
    assert event["type"] == f"dev.asynctask.task.{phase.value.lower()}"
    assert event["data"]["phase"] == phase.value


def test_ids_are_deterministic_so_receivers_can_deduplicate() -> None:
    s = status("Failed", error={"reason": "Bad", "message": "no"})
    assert build_event(REF, s)["id"] == build_event(REF, dict(s))["id"]
    assert build_event(REF, s)["id"] != build_event(REF, dict(s, attempts=2))["id"]
    assert build_event(REF, s)["data"]["error"] == {"reason": "Bad", "message": "no"}
    p10 = build_event(REF, status("Processing", progress=10), progress_event=True)
    assert p10["type"] == "dev.asynctask.task.progress"
    assert (
        p10["id"] == build_event(REF, status("Processing", progress=10), progress_event=True)["id"]
    )
    assert (
        p10["id"] != build_event(REF, status("Processing", progress=20), progress_event=True)["id"]
    )
    assert (
        p10["id"]
        != build_event(
            REF, status("Processing", progress=10, message="other"), progress_event=True
        )["id"]
    )
    assert event_id("u", 1, Phase.TIMED_OUT) == "u.1.timedout"


def test_a_waiting_retry_is_about_the_next_attempt() -> None:
    queued = build_event(REF, status("Pending", attempts=0))
    retry = build_event(
        REF,
        status(
            "Pending",
            attempts=1,
            nextAttempt=2,
            nextAttemptTime="2030-01-02T03:05:00Z",
            lastError={"reason": "Boom"},
        ),
    )
    assert queued["id"] == f"{REF.uid}.1.pending"
    assert retry["id"] == f"{REF.uid}.2.pending"
    assert retry["data"]["attempt"] == 2 and retry["data"]["attempts"] == 1
    assert retry["data"]["lastError"] == {"reason": "Boom"}
    assert retry["data"]["nextAttemptTime"] == "2030-01-02T03:05:00Z"


def test_a_status_without_phase_has_no_event() -> None:
    with pytest.raises(ValueError, match="no phase"):
        build_event(REF, {})
