"""Delayed tasks (``spec.notBefore``) on the real control plane and RabbitMQ: held while
Pending (reason Scheduled, nothing in the queue, no worker run), then queued and run not
before the due time and within ON_TIME after it; cancelled or deleted while held, never
run; held across an operator restart, run once and on time; submitted through the
gateway and the CLI.

The bounds are correctness bounds: never early (to the microsecond of the status's
timestamps and of the handler's own clock), and late by at most ON_TIME seconds.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from asynctask_operator.status import parse_time, precise_time
from testbed import ControlPlane, RabbitMQ, wait_until
from tests.e2e.gateway_client import Gateway
from tests.e2e.system import Process
from tests.e2e.tasks import create, get, patch_spec, ready_messages, status, wait_phase

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator", "lifecycle_worker")]
pytest_plugins = ["tests.e2e.gateway_fixtures", "tests.e2e.client_fixtures"]
#: How late a delayed task may start after its due time (the status's startTime, written
#: from the worker's clock), on this shared 2-core machine.
ON_TIME = 5.0


def due_in(seconds: float) -> str:
    return precise_time(datetime.now(UTC) + timedelta(seconds=seconds))


def starts(markers: Path, namespace: str, name: str) -> list[float]:
    """When the ``stamp`` handler started, once per run (its own wall clock)."""
    path = markers / f"{namespace}.{name}.starts"
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def assert_held(cp: ControlPlane, rabbitmq: RabbitMQ, ns: str, name: str, due: str) -> None:
    st = wait_phase(cp, ns, name, "Pending")
    assert st["message"] == f"scheduled for {parse_time(due).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    assert {c["type"]: c["reason"] for c in st["conditions"]}["Reconciling"] == "Scheduled"
    assert parse_time(st["scheduledTime"]) == parse_time(due)
    assert "queuedTime" not in st and "messageId" not in st
    assert ready_messages(rabbitmq, "stamp") == 0


def assert_on_time(st: dict[str, Any], due: str, ran: list[float]) -> float:
    """Queued and started not before ``due``, started within ON_TIME; the lateness."""
    at = parse_time(due)
    assert parse_time(st["queuedTime"]) >= at, (st["queuedTime"], due)
    assert parse_time(st["startTime"]) >= at, (st["startTime"], due)
    assert len(ran) == 1, ran  # ran once
    assert ran[0] >= at.timestamp()
    late = (parse_time(st["startTime"]) - at).total_seconds()
    assert late <= ON_TIME, late
    return late


def asynctask(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The ``asynctask`` CLI as a script runs it, with the given kubeconfig only."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASK_")}
    env.update(KUBECONFIG=str(kubeconfig))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "asynctask"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(f"$ asynctask {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}")
    return done


def operator_writes(cp: ControlPlane, ns: str, name: str) -> list[dict[str, Any]]:
    return [
        w
        for w in cp.writes(ns)
        if w["resource"] == "asynctasks" and w["name"] == name and w["verb"] != "create"
    ]


def test_a_delayed_task_is_held_then_runs_not_early_and_on_time(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, markers: Path
) -> None:
    due = due_in(8)
    create(control_plane, namespace, "later", queue="stamp", request={}, notBefore=due)
    assert_held(control_plane, rabbitmq, namespace, "later", due)
    wide = control_plane.kubectl("get", "asynctask", "later", "-n", namespace, "-o", "wide").stdout
    print(f"\n$ kubectl get asynctasks -o wide\n{wide}")
    assert "NOT-BEFORE" in wide and due[:19] in wide, wide
    time.sleep(max(0.0, parse_time(due).timestamp() - time.time() - 2))
    assert starts(markers, namespace, "later") == []  # 2 s before: still not run
    assert status(control_plane, namespace, "later")["phase"] == "Pending"
    st = wait_phase(control_plane, namespace, "later", "Succeeded", timeout=30)
    late = assert_on_time(st, due, starts(markers, namespace, "later"))
    time.sleep(2)  # a late write would show now
    writes = operator_writes(control_plane, namespace, "later")
    print(
        f"\nnotBefore: started {late:.3f}s after the due time; status writes: {len(writes)} "
        f"{[(w['verb'], w['subresource']) for w in writes]}"
    )
    # Pending (Scheduled), Pending (queued), Processing, Succeeded: one more than an
    # undelayed task (the queued write is what makes a restart safe); three if the start
    # was folded into the end.
    assert 3 <= len(writes) <= 4 and all(w["subresource"] == "status" for w in writes)


def test_a_held_task_costs_one_status_write_more_and_its_due_time_cannot_change(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str
) -> None:
    due = due_in(4)
    create(
        control_plane, namespace, "counted", queue="sleepy", request={"seconds": 1}, notBefore=due
    )
    wait_phase(control_plane, namespace, "counted", "Pending")
    moved = patch_spec(control_plane, namespace, "counted", {"notBefore": due_in(60)}, check=False)
    assert moved.returncode != 0 and "spec.notBefore is immutable" in moved.stderr
    wait_phase(control_plane, namespace, "counted", "Succeeded", timeout=30)
    time.sleep(2)  # a late write would show now
    # Besides the user's create and the test's refused patch of the spec (422).
    writes = [w for w in operator_writes(control_plane, namespace, "counted") if w["code"] != 422]
    print(f"\nstatus writes of a held task that ran 1 s: {len(writes)}")
    # Pending (Scheduled), Pending (queued), Processing, Succeeded.
    assert len(writes) == 4 and all(w["subresource"] == "status" for w in writes), writes


def test_the_queue_timeout_counts_from_the_due_time(
    control_plane: ControlPlane, namespace: str
) -> None:
    due = due_in(4)
    create(
        control_plane,
        namespace,
        "unserved",
        queue="nobody-serves-this",
        notBefore=due,
        queueTimeoutSeconds=3,
    )
    st = wait_phase(control_plane, namespace, "unserved", "TimedOut", timeout=30)
    assert st["error"]["reason"] == "QueueTimeout"
    waited = (parse_time(st["completionTime"]) - parse_time(due)).total_seconds()
    print(f"\nqueueTimeoutSeconds: 3 after a due time: TimedOut {waited:.3f}s after it")
    assert parse_time(st["queuedTime"]) >= parse_time(due) and waited >= 3.0


def test_a_task_cancelled_or_deleted_while_held_never_runs(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, markers: Path
) -> None:
    due = due_in(6)
    for name in ("cancelled", "deleted"):
        create(control_plane, namespace, name, queue="stamp", request={}, notBefore=due)
        assert_held(control_plane, rabbitmq, namespace, name, due)
    patch_spec(control_plane, namespace, "cancelled", {"cancel": True})
    st = wait_phase(control_plane, namespace, "cancelled", "Cancelled", timeout=15)
    assert st["error"]["reason"] == "CancelRequested"
    control_plane.kubectl("delete", "asynctask", "deleted", "-n", namespace)
    time.sleep(max(0.0, parse_time(due).timestamp() - time.time() + 3))  # past due
    assert status(control_plane, namespace, "cancelled")["phase"] == "Cancelled"
    assert ready_messages(rabbitmq, "stamp") == 0
    assert starts(markers, namespace, "cancelled") == starts(markers, namespace, "deleted") == []


def test_an_operator_restart_while_held_keeps_the_due_time_and_runs_once(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    namespace: str,
    markers: Path,
    operator: Process,
) -> None:
    due = due_in(12)
    create(control_plane, namespace, "restarted", queue="stamp", request={}, notBefore=due)
    assert_held(control_plane, rabbitmq, namespace, "restarted", due)
    operator.restart()
    operator.wait_ready()
    assert time.time() < parse_time(due).timestamp(), "the restart took past the due time"
    st = wait_phase(control_plane, namespace, "restarted", "Succeeded", timeout=40)
    late = assert_on_time(st, due, starts(markers, namespace, "restarted"))
    assert st["attempts"] == 1
    print(f"\nheld across an operator restart: started {late:.3f}s after the due time")


def test_an_operator_down_at_the_due_time_queues_the_task_when_it_is_back(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    namespace: str,
    markers: Path,
    operator: Process,
) -> None:
    due = due_in(4)
    create(control_plane, namespace, "missed", queue="stamp", request={}, notBefore=due)
    assert_held(control_plane, rabbitmq, namespace, "missed", due)
    operator.stop()
    try:
        time.sleep(max(0.0, parse_time(due).timestamp() - time.time() + 2))
        assert status(control_plane, namespace, "missed")["phase"] == "Pending"
    finally:
        operator.restart()
    operator.wait_ready()
    st = wait_phase(control_plane, namespace, "missed", "Succeeded", timeout=30)
    assert parse_time(st["queuedTime"]) >= parse_time(due)
    assert len(starts(markers, namespace, "missed")) == 1 and st["attempts"] == 1


def test_the_gateway_takes_not_before(
    control_plane: ControlPlane, gateway: Gateway, gateway_worker: Process
) -> None:
    due = due_in(5)
    answer = gateway.call(
        "POST", gateway.tasks(), {"queue": "gw-sleepy", "request": {"seconds": 0}, "notBefore": due}
    )
    assert answer.status == 202, answer.body
    view = answer.json()
    assert view["notBefore"] == due and view["phase"] == "Pending"
    name = view["name"]
    wait_until(
        "the held write",
        lambda: str(gateway.call("GET", f"{gateway.tasks()}/{name}").json()["message"]).startswith(
            "scheduled for "
        ),
        15,
    )
    st = wait_phase(control_plane, gateway.namespace, name, "Succeeded", timeout=30)
    assert parse_time(st["startTime"]) >= parse_time(due)
    assert (parse_time(st["startTime"]) - parse_time(due)).total_seconds() <= ON_TIME


def test_the_cli_submits_with_in_and_prints_the_absolute_time(
    control_plane: ControlPlane, gateway: Gateway, writer_kubeconfig: Path, client_worker: object
) -> None:
    before = datetime.now(UTC)
    done = asynctask(
        writer_kubeconfig,
        "submit",
        "cl-steps",
        "--request",
        '{"steps": 1, "pause": 0}',
        "--in",
        "4s",
    )
    assert done.returncode == 0, done.stderr
    match = re.search(r"asynctask/(\S+) submitted, scheduled for (\S+)", done.stdout)
    assert match, done.stdout
    name, due = match[1], match[2]
    assert (
        before + timedelta(seconds=4) <= parse_time(due) <= datetime.now(UTC) + timedelta(seconds=4)
    )
    assert get(control_plane, gateway.namespace, name)["spec"]["notBefore"] == due
    st = wait_phase(control_plane, gateway.namespace, name, "Succeeded", timeout=30)
    assert parse_time(st["startTime"]) >= parse_time(due)
