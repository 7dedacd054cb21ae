"""Schedules and queues through the shared gateway with the real operator acting on them: what
the gateway shows is what the operator did (slots run, a schedule suspended, a task held by a
paused queue and released by a resume), not a status the test wrote.

The gateway tests of each route and its authorization are in test_gateway_schedules.py; the
operator's own behaviour in test_schedules.py and test_queues.py. This file joins them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from testbed import ControlPlane
from testbed._proc import wait_until
from tests.e2e.gateway_client import Gateway, grant_queues
from tests.e2e.system import Process

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures"]


def task_names(gw: Gateway, selector: str) -> list[str]:
    answer = gw.call("GET", f"/v1/namespaces/{gw.namespace}/tasks?labelSelector={selector}")
    assert answer.status == 200, answer.body
    return sorted(item["name"] for item in answer.json()["items"])


def test_a_schedule_made_through_the_gateway_is_run_by_the_operator_and_suspended(
    gateway: Gateway, operator: Process
) -> None:
    gw, name = gateway, f"every2-{uuid.uuid4().hex[:6]}"
    path = f"/v1/namespaces/{gw.namespace}/schedules"
    body = {"name": name, "intervalSeconds": 2, "template": {"spec": {"queue": "gwop-none"}}}
    assert gw.call("POST", path, body).status == 201
    selector = f"asynctask.dev/schedule={name}"

    def view() -> dict[str, Any]:
        doc: dict[str, Any] = gw.call("GET", f"{path}/{name}").json()
        return doc

    # Two slots run by the operator: their tasks are listed by the schedule's label, and the
    # schedule's view carries the operator's record of them.
    wait_until("two slots run", lambda: len(task_names(gw, selector)) >= 2, timeout=30)
    seen = view()
    assert seen["lastScheduleTime"] and seen["nextScheduleTime"] > seen["lastScheduleTime"]
    assert all(t.startswith(f"{name}-") for t in task_names(gw, selector))

    assert gw.call("POST", f"{path}/{name}:suspend").json()["suspend"] is True
    wait_until(
        "the operator to record the suspension",
        lambda: (view().get("ready") or {}).get("reason") == "Suspended",
        timeout=20,
    )
    # Seen suspended by the operator, the schedule creates nothing more: three intervals on,
    # its tasks are the same.
    before = task_names(gw, selector)
    time.sleep(6)
    assert task_names(gw, selector) == before
    assert gw.call("DELETE", f"{path}/{name}").status in (200, 204)


@pytest.fixture
def paused_queue(control_plane: ControlPlane, gateway: Gateway) -> Iterator[str]:
    """A fresh AsyncQueue, paused, and the writer's right to read, pause and resume it."""
    queue = f"gwop-{uuid.uuid4().hex[:6]}"
    manifest = (
        f"apiVersion: asynctask.dev/v1alpha1\nkind: AsyncQueue\nmetadata:\n  name: {queue}\n"
        "spec:\n  paused: true\n"
    )
    control_plane.kubectl("apply", "-f", "-", input=manifest)
    with grant_queues(control_plane, gateway.namespace, "writer", ["get", "list", "patch"]):
        yield queue
    control_plane.kubectl("delete", "asyncqueue", queue, "--wait=false", check=False)


def test_a_task_held_by_a_paused_queue_is_released_by_a_resume_through_the_gateway(
    gateway: Gateway, operator: Process, paused_queue: str
) -> None:
    gw, queue = gateway, paused_queue
    tasks = f"/v1/namespaces/{gw.namespace}/tasks"
    qpath = f"/v1/queues/{queue}"
    wait_until(
        "the operator to apply the pause",
        lambda: any(
            c["type"] == "Paused" and c["status"] == "True"
            for c in gw.call("GET", qpath).json().get("conditions") or []
        ),
        timeout=30,
    )
    created = gw.call("POST", tasks, {"name": f"held-{queue}", "queue": queue})
    assert created.status in (200, 202), created.body
    task = f"{tasks}/held-{queue}"

    def view() -> dict[str, Any]:
        doc: dict[str, Any] = gw.call("GET", task).json()
        return doc

    wait_until("the task held as Paused", lambda: view()["reason"] == "Paused", timeout=20)
    assert view()["phase"] == "Pending"
    wait_until("the queue to count it held", lambda: gw.call("GET", qpath).json()["held"] == 1, 20)

    assert gw.call("POST", f"{qpath}:resume").json()["paused"] is False
    # Released: published and recorded as waiting for a worker (none serves this queue).
    wait_until(
        "the task released",
        lambda: view()["reason"] is None and view()["message"] == "Waiting for a worker",
        timeout=20,
    )
    wait_until("nothing held", lambda: gw.call("GET", qpath).json()["held"] == 0, timeout=20)
    assert gw.call("GET", qpath).json()["inFlight"] == 1
    gw.call("DELETE", task)
