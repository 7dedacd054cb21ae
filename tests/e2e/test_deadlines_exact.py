"""Timeouts are never early: a time limit counts from the handler's start, a queue timeout
from the task's creation, each to the microsecond (late by a little is allowed).

These are correctness bounds (lower bounds), not performance figures.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from asynctask_operator.status import parse_time
from testbed import ControlPlane, wait_until
from tests.e2e.tasks import create, wait_phase

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator", "lifecycle_worker")]


def test_a_two_second_handler_runs_two_seconds_before_it_is_told_to_stop(
    control_plane: ControlPlane, namespace: str, markers: Path
) -> None:
    create(control_plane, namespace, "two-seconds", queue="stopwatch", request={}, timeoutSeconds=2)
    st = wait_phase(control_plane, namespace, "two-seconds", "TimedOut", timeout=30)
    wait_until(
        "the handler's record", lambda: list(markers.glob(f"{namespace}.two-seconds.ran-*")), 10
    )
    [ran] = markers.glob(f"{namespace}.two-seconds.ran-*")
    seconds = float(ran.name.rsplit("ran-", 1)[1])
    print(f"\ntimeoutSeconds: 2: the handler ran {seconds:.3f}s before it was told to stop")
    assert seconds >= 2.0
    # The status's startTime is the handler's start, to the microsecond.
    assert "." in st["startTime"] and "." in st["completionTime"]
    assert (parse_time(st["completionTime"]) - parse_time(st["startTime"])).total_seconds() >= 2.0


def created_at(control_plane: ControlPlane, namespace: str, name: str) -> datetime:
    """When the apiserver had finished creating the object: the audit log's
    ResponseComplete stage (microseconds), an upper bound of the creation time."""
    for line in control_plane.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            event.get("verb"),
            event.get("stage"),
            ref.get("namespace"),
            ref.get("name"),
            ref.get("subresource"),
        ) == ("create", "ResponseComplete", namespace, name, None):
            return parse_time(event["stageTimestamp"])
    raise AssertionError(f"no audited create of {namespace}/{name}")


def test_a_three_second_queue_timeout_ends_the_task_three_seconds_after_creation(
    control_plane: ControlPlane, namespace: str
) -> None:
    create(control_plane, namespace, "unserved", queue="nobody-serves-this", queueTimeoutSeconds=3)
    st = wait_phase(control_plane, namespace, "unserved", "TimedOut", timeout=30)
    assert st["error"]["reason"] == "QueueTimeout"
    after = (
        parse_time(st["completionTime"]) - created_at(control_plane, namespace, "unserved")
    ).total_seconds()
    print(f"\nqueueTimeoutSeconds: 3: TimedOut {after:.3f}s after the object was created")
    assert after >= 3.0
