"""The task lifecycle on the real control plane and RabbitMQ: budget, cancellation,
deletion, timeouts, retries, monotonic status, events, TTL, limits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pika
import pytest

from asynctask_worker import topology
from asynctask_worker.messages import Phase, StatusMessage, TaskRef, encode
from testbed import ControlPlane, RabbitMQ, wait_until
from testbed._proc import free_port
from tests.e2e.system import Process, system_env, worker_ready
from tests.e2e.tasks import (
    STATUS_MESSAGES,
    Counted,
    create,
    get,
    patch_spec,
    ready_messages,
    status,
    wait_phase,
)

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator", "lifecycle_worker")]


def test_a_progress_burst_costs_at_most_three_writes(
    control_plane: ControlPlane, namespace: str
) -> None:
    create(control_plane, namespace, "burst", queue="burst", request={})
    st = wait_phase(control_plane, namespace, "burst", "Succeeded")
    assert st["result"] == {"ticks": 20}
    time.sleep(2)  # any write still coming (a late progress flush) would show up now
    # What the task costs: writes to it and Events about it (the namespace's own
    # ServiceAccount and ConfigMap, made by kube-controller-manager, are not the task's).
    writes = [
        w for w in control_plane.writes(namespace) if w["resource"] in ("asynctasks", "events")
    ]
    by_operator = [
        w for w in writes if not (w["verb"] == "create" and w["resource"] == "asynctasks")
    ]
    calls = [(w["verb"], w["resource"], w["subresource"]) for w in by_operator]
    print(
        f"\nwrites for one task with 20 progress reports in ~0.5s: {len(by_operator)} "
        f"besides the user's create: {calls}"
    )
    assert [w["verb"] for w in writes].count("create") == 1  # the user's
    assert len(by_operator) <= 3, by_operator
    assert all(w["subresource"] == "status" for w in by_operator), by_operator


def test_cancel_a_processing_task(
    control_plane: ControlPlane, namespace: str, markers: Path
) -> None:
    create(control_plane, namespace, "slow", queue="sleepy", request={"seconds": 120})
    wait_phase(control_plane, namespace, "slow", "Processing")
    asked = time.monotonic()
    patch_spec(control_plane, namespace, "slow", {"cancel": True})
    st = wait_phase(control_plane, namespace, "slow", "Cancelled", timeout=30)
    took = time.monotonic() - asked
    print(f"\ncancel of a Processing task: Cancelled after {took:.2f}s")
    assert (markers / f"{namespace}.slow.cancelled").exists()  # the handler saw it
    assert st["error"]["reason"] == "Cancelled"
    assert {c["type"]: c["status"] for c in st["conditions"]}["Completed"] == "True"
    # The record is kept and cancel cannot be undone.
    result = patch_spec(control_plane, namespace, "slow", {"cancel": False}, check=False)
    assert result.returncode != 0
    assert "spec.cancel cannot be undone" in result.stderr


def test_delete_stops_a_processing_task_without_a_finalizer(
    control_plane: ControlPlane, namespace: str, markers: Path
) -> None:
    create(control_plane, namespace, "doomed", queue="sleepy", request={"seconds": 120})
    wait_phase(control_plane, namespace, "doomed", "Processing")
    assert not get(control_plane, namespace, "doomed")["metadata"].get("finalizers")
    control_plane.kubectl("delete", "asynctask", "doomed", "-n", namespace, "--timeout=10s")
    took = wait_until(
        "the handler to see the cancellation",
        lambda: (markers / f"{namespace}.doomed.cancelled").exists(),
        20,
    )
    print(f"\ndelete of a Processing task: handler told to stop after {took:.2f}s")


def test_run_timeout(control_plane: ControlPlane, namespace: str) -> None:
    create(
        control_plane,
        namespace,
        "too-slow",
        queue="sleepy",
        request={"seconds": 120},
        timeoutSeconds=2,
    )
    st = wait_phase(control_plane, namespace, "too-slow", "TimedOut", timeout=30)
    assert st["error"]["reason"] in ("DeadlineExceeded", "TimeLimitExceeded")
    assert {c["type"]: c["status"] for c in st["conditions"]}["Stalled"] == "True"


def test_queue_timeout_is_separate_from_run_timeout(
    control_plane: ControlPlane, namespace: str
) -> None:
    create(
        control_plane,
        namespace,
        "unserved",
        queue="nobody-serves-this",
        queueTimeoutSeconds=2,
        timeoutSeconds=600,
    )
    st = wait_phase(control_plane, namespace, "unserved", "TimedOut", timeout=30)
    assert st["error"]["reason"] == "QueueTimeout"
    assert st["attempts"] == 0


def test_error_is_retried_with_backoff_until_success(
    control_plane: ControlPlane, namespace: str
) -> None:
    create(
        control_plane,
        namespace,
        "flaky",
        queue="flaky",
        request={"succeed_on": 3},
        retries=3,
        retryBackoffSeconds=1,
    )
    st = wait_phase(control_plane, namespace, "flaky", "Succeeded", timeout=60)
    assert st["attempts"] == 3
    assert st["result"] == {"attempt": 3}
    assert st["lastError"]["reason"] == "HandlerException"
    assert "nextAttempt" not in st


def test_retries_run_out_and_end_in_error(control_plane: ControlPlane, namespace: str) -> None:
    create(
        control_plane,
        namespace,
        "hopeless",
        queue="flaky",
        request={},
        retries=1,
        retryBackoffSeconds=1,
    )
    st = wait_phase(control_plane, namespace, "hopeless", "Error", timeout=60)
    assert st["attempts"] == 2
    assert st["error"]["message"] == "RuntimeError: attempt 2 fails"


def test_failed_is_never_retried(control_plane: ControlPlane, namespace: str) -> None:
    create(
        control_plane,
        namespace,
        "refused",
        queue="refuses",
        request={},
        retries=3,
        retryBackoffSeconds=1,
    )
    st = wait_phase(control_plane, namespace, "refused", "Failed")
    time.sleep(2)
    st = status(control_plane, namespace, "refused")
    assert (st["phase"], st["attempts"], st["error"]["reason"]) == ("Failed", 1, "Refused")


def test_terminal_phase_never_changes_on_late_messages(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, operator: Process
) -> None:
    obj = create(control_plane, namespace, "done", queue="burst", request={})
    before = wait_phase(control_plane, namespace, "done", "Succeeded")
    version = get(control_plane, namespace, "done")["metadata"]["resourceVersion"]
    ref = TaskRef(uid=obj["metadata"]["uid"], namespace=namespace, name="done")
    # Newer than anything the worker sent (its stream ended below seq 30), each would change
    # a running task: progress, a later phase, a new attempt. A Succeeded one keeps all out.
    late = [
        StatusMessage(task=ref, attempt=1, seq=50, phase=Phase.PROCESSING, progress=10),
        StatusMessage(task=ref, attempt=1, seq=99, phase=Phase.ERROR),
        StatusMessage(task=ref, attempt=7, seq=0, phase=Phase.FAILED),
    ]
    counted = Counted(operator.env)
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    ch = conn.channel()
    for m in late:
        ch.basic_publish("", topology.STATUS_QUEUE, encode(m))
    ch.basic_publish("", topology.STATUS_QUEUE, b"this is not a status message")
    conn.close()
    counted.wait(3, STATUS_MESSAGES, result="ignored")  # handled, not merely sent
    counted.wait(1, STATUS_MESSAGES, result="malformed")
    after = get(control_plane, namespace, "done")
    assert after["metadata"]["resourceVersion"] == version
    assert after["status"] == before


def test_events_record_what_went_wrong(control_plane: ControlPlane, namespace: str) -> None:
    create(control_plane, namespace, "broken", queue="flaky", request={})
    wait_phase(control_plane, namespace, "broken", "Error")

    def events() -> list[dict[str, Any]]:
        out = control_plane.kubectl("get", "events", "-n", namespace, "-o", "json").stdout
        return [e for e in json.loads(out)["items"] if e["involvedObject"]["name"] == "broken"]

    wait_until("an Error event", lambda: any(e["reason"] == "Error" for e in events()), 15)
    (event,) = [e for e in events() if e["reason"] == "Error"]
    assert event["type"] == "Warning"
    assert "attempt 1 fails" in event["message"]
    assert event["involvedObject"]["kind"] == "AsyncTask"


def test_ttl_deletes_finished_tasks(control_plane: ControlPlane, namespace: str) -> None:
    create(
        control_plane,
        namespace,
        "short-lived",
        queue="burst",
        request={},
        ttlSecondsAfterFinished=3,
    )
    wait_phase(control_plane, namespace, "short-lived", "Succeeded")
    finished = time.monotonic()
    assert get(control_plane, namespace, "short-lived")  # kept while the TTL runs

    def gone() -> bool:
        result = control_plane.kubectl(
            "get", "asynctask", "short-lived", "-n", namespace, check=False
        )
        return result.returncode != 0 and "NotFound" in result.stderr

    wait_until("the task to be deleted", gone, 30)
    took = time.monotonic() - finished
    print(f"\nttlSecondsAfterFinished=3: deleted {took:.2f}s after Succeeded was seen")
    assert took >= 1.5  # not at once: after the TTL (seen late by up to the write's lag)


def test_spec_is_immutable_except_cancel(control_plane: ControlPlane, namespace: str) -> None:
    create(control_plane, namespace, "fixed", queue="nobody-serves-this", retries=1)
    for field, value, message in [
        ("retries", 5, "spec.retries is immutable"),
        ("timeoutSeconds", 9, "spec.timeoutSeconds is immutable"),
        ("ttlSecondsAfterFinished", 9, "spec.ttlSecondsAfterFinished is immutable"),
    ]:
        result = patch_spec(control_plane, namespace, "fixed", {field: value}, check=False)
        assert result.returncode != 0
        assert message in result.stderr
    # One rule checks every field (deploy/crds: one evaluation a status write): a change of
    # two fields is refused naming both, in the words of each.
    both = {"retries": 5, "timeoutSeconds": 9}
    result = patch_spec(control_plane, namespace, "fixed", both, check=False)
    assert result.returncode != 0
    assert (
        "spec.timeoutSeconds is immutable once the task is created; "
        "spec.retries is immutable once the task is created"
    ) in result.stderr, result.stderr
    patch_spec(control_plane, namespace, "fixed", {"cancel": True})
    wait_phase(control_plane, namespace, "fixed", "Cancelled")


def test_result_and_request_size_limits(control_plane: ControlPlane, namespace: str) -> None:
    create(control_plane, namespace, "big-result", queue="huge-result", request={})
    st = wait_phase(control_plane, namespace, "big-result", "Error")
    assert st["error"]["reason"] == "ResultTooLarge"
    create(control_plane, namespace, "big-request", queue="burst", request={"blob": "y" * 300_000})
    st = wait_phase(control_plane, namespace, "big-request", "Error")
    assert st["error"]["reason"] == "RequestTooLarge"
    assert "limit is 262144" in st["error"]["message"]


def test_deadlines_survive_an_operator_restart(
    control_plane: ControlPlane, namespace: str, operator: Process
) -> None:
    create(control_plane, namespace, "waiting", queue="nobody-serves-this", queueTimeoutSeconds=15)
    wait_phase(control_plane, namespace, "waiting", "Pending")
    operator.stop()
    try:
        time.sleep(16)  # the deadline passes while no operator runs
        assert status(control_plane, namespace, "waiting")["phase"] == "Pending"
    finally:
        operator.restart()
    restarted = time.monotonic()
    operator.wait_ready()
    # From the object's timestamps the deadline is already past: TimedOut at once. A new
    # 15 s timer started by the restart would need 15 s.
    st = wait_phase(control_plane, namespace, "waiting", "TimedOut", timeout=10)
    took = time.monotonic() - restarted
    print(
        f"\nqueue deadline passed while the operator was down: TimedOut {took:.2f}s "
        f"after its restart"
    )
    assert took < 12
    assert st["error"]["reason"] == "QueueTimeout"


def test_a_message_that_keeps_killing_workers_is_dead_lettered(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, tmp_path: Path
) -> None:
    """Each worker that takes the message dies (os._exit); the broker redelivers it to the
    next one, until the quorum queue's delivery limit dead-letters it: the task ends in
    Error and says why. Nothing retries it (a poison message would only kill again)."""
    from tests.e2e.system import system_env

    create(control_plane, namespace, "poison", queue="poison", request={}, retries=3)
    env = dict(system_env(control_plane, rabbitmq), LIFECYCLE_MARKERS=str(tmp_path))
    deaths = 0

    for _ in range(topology.DEFAULT_DELIVERY_LIMIT + 3):
        # Either the message waits for the next worker, or it was dead-lettered and the
        # task ends in Error: a worker started before either would wait for nothing.
        wait_until(
            "the message to be requeued or the task to end",
            lambda: (
                ready_messages(rabbitmq, "poison") == 1
                or status(control_plane, namespace, "poison").get("phase") == "Error"
            ),
            30,
        )
        if status(control_plane, namespace, "poison").get("phase") == "Error":
            break
        worker = subprocess.run(
            [
                sys.executable,
                "-m",
                "asynctask_worker",
                "tests.e2e.lifecycle_app:app",
                "--queues",
                "poison",
            ],
            env=env,
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert worker.returncode == 3, worker.stderr[-2000:]
        deaths += 1
    st = wait_phase(control_plane, namespace, "poison", "Error", timeout=30)
    print(
        f"\npoison message: dead-lettered after {deaths} worker deaths; attempts={st['attempts']}"
    )
    assert st["error"]["reason"] == "DeliveryLimitExceeded"
    assert "dead-lettered" in st["error"]["message"]
    assert deaths == topology.DEFAULT_DELIVERY_LIMIT + 1


def test_work_of_a_task_deleted_while_the_operator_was_down_is_stopped(
    control_plane: ControlPlane, namespace: str, operator: Process, markers: Path
) -> None:
    create(control_plane, namespace, "orphan", queue="ticking", request={"seconds": 120})
    wait_phase(control_plane, namespace, "orphan", "Processing")
    operator.stop()
    try:
        control_plane.kubectl(
            "delete", "asynctask", "orphan", "-n", namespace, "--timeout=10s"
        )  # no finalizer: never waits for the operator
    finally:
        operator.restart()
    operator.wait_ready()
    took = wait_until(
        "the orphaned handler to be stopped",
        lambda: (markers / f"{namespace}.orphan.cancelled").exists(),
        30,
    )
    print(f"\norphaned work stopped {took:.2f}s after the operator came back")


def test_a_recreated_task_never_gets_the_old_ones_status(
    control_plane: ControlPlane, namespace: str, markers: Path
) -> None:
    old = create(control_plane, namespace, "reborn", queue="ticking", request={"seconds": 30})
    wait_phase(control_plane, namespace, "reborn", "Processing")
    control_plane.kubectl("delete", "asynctask", "reborn", "-n", namespace)
    new = create(control_plane, namespace, "reborn", queue="nobody-serves-this")
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    wait_phase(control_plane, namespace, "reborn", "Pending")
    wait_until(
        "the old handler to be stopped",
        lambda: (markers / f"{namespace}.reborn.cancelled").exists(),
        20,
    )
    time.sleep(2)
    st = status(control_plane, namespace, "reborn")
    assert (st["phase"], st["attempts"], st["messageId"]) == (
        "Pending",
        0,
        f"task:{new['metadata']['uid']}:1",
    )


def test_a_handler_that_ignores_cancellation_is_stopped_hard(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    namespace: str,
    operator: Process,
    markers: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # The process pool runs each task in a child process, killed after the grace period.
    env = dict(
        system_env(control_plane, rabbitmq),
        LIFECYCLE_MARKERS=str(markers),
        ASYNCTASK_WORKER_CANCEL_GRACE_SECONDS="2",
    )
    port = free_port()
    worker = Process(
        "stubborn-worker",
        [
            sys.executable,
            "-m",
            "asynctask_worker",
            "tests.e2e.lifecycle_app:app",
            "--pool",
            "process",
            "--queues",
            "stubborn",
            "--metrics-port",
            str(port),
        ],
        env,
        tmp_path_factory.mktemp("stubborn-worker"),
        worker_ready(port),
    )
    try:
        worker.wait_ready()
        create(control_plane, namespace, "stubborn", queue="stubborn", request={"seconds": 60})
        wait_phase(control_plane, namespace, "stubborn", "Processing")
        pid_file = markers / f"{namespace}.stubborn.pid"
        wait_until("the handler's pid", pid_file.exists, 10)
        pid = int(pid_file.read_text())
        asked = time.monotonic()
        patch_spec(control_plane, namespace, "stubborn", {"cancel": True})
        st = wait_phase(control_plane, namespace, "stubborn", "Cancelled", timeout=30)
        took = time.monotonic() - asked
        print(f"\nhandler ignoring cancellation: Cancelled after {took:.2f}s (grace 2s)")

        def gone() -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_until("the handler's process to be killed", gone, 10)
        assert st["error"]["reason"] == "Cancelled"
        assert not (markers / f"{namespace}.stubborn.finished").exists()
        assert worker.alive()  # the worker itself goes on
    finally:
        worker.stop()


def test_progress_never_goes_backwards_within_an_attempt(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, operator: Process
) -> None:
    obj = create(control_plane, namespace, "steady", queue="sleepy", request={"seconds": 60})
    wait_phase(control_plane, namespace, "steady", "Processing")
    ref = TaskRef(uid=obj["metadata"]["uid"], namespace=namespace, name="steady")

    def send(progress: int, seq: int) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
        conn.channel().basic_publish(
            "",
            topology.STATUS_QUEUE,
            encode(
                StatusMessage(
                    task=ref,
                    attempt=1,
                    seq=seq,
                    phase=Phase.PROCESSING,
                    progress=progress,
                    message=f"at {progress}",
                )
            ),
        )
        conn.close()

    def progress() -> int:
        return int(status(control_plane, namespace, "steady").get("progress") or 0)

    send(60, 1000)
    wait_until("progress 60", lambda: progress() == 60, 15)
    counted = Counted(operator.env)
    send(30, 1001)  # lower: never shown
    send(70, 999)  # an older message arriving late: ignored
    counted.wait(2, STATUS_MESSAGES, result="ignored")  # both handled (the handler sends none)
    time.sleep(1.5)  # more than the progress coalescing interval: nothing was held back
    assert progress() == 60
    assert status(control_plane, namespace, "steady")["message"] == "at 60"
    send(80, 1002)  # newer and higher: shown, so the pipe above was open
    wait_until("progress 80", lambda: progress() == 80, 15)
    patch_spec(control_plane, namespace, "steady", {"cancel": True})
    wait_phase(control_plane, namespace, "steady", "Cancelled", timeout=30)
