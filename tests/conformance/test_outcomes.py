"""Conformance cases one worker of the SDK serves for the whole session (docs/conformance.md):
how a run ends (success, business failure vs crash, result size, time limit, hard stop),
progress, and malformed task messages. Each reads the AsyncTask status the suite's operator
writes and the suite's RabbitMQ, never the worker's insides."""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import pytest

from asynctask_worker import topology
from asynctask_worker.messages import TaskMessage, TaskRef, encode
from testbed import ControlPlane, wait_until
from tests.conformance.harness import (
    START_REPORT_SECONDS,
    Broker,
    ConformanceWorker,
    task_headers,
)
from tests.e2e.system import Process
from tests.e2e.tasks import STATUS_MESSAGES, create, patch_spec, scrape, status, wait_phase

pytestmark = pytest.mark.e2e

#: The operator records Cancelled itself this long after a cancel no worker confirmed
#: (ASYNCTASK_CANCEL_CONFIRM_SECONDS), with this reason: a Cancelled within less time
#: and with another reason was reported by the worker.
OPERATOR_CANCEL_FALLBACK = (45, "CancelRequested")


def seconds(st: dict[str, Any], start: str, end: str) -> float:
    return (datetime.fromisoformat(st[end]) - datetime.fromisoformat(st[start])).total_seconds()


def park(cp: ControlPlane, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    """An AsyncTask Pending on a queue no worker serves: its real task message waits there."""
    obj = create(cp, ns, name, queue="conformance.parked", **spec)
    wait_until(f"{name} Pending", lambda: status(cp, ns, name).get("phase") == "Pending")
    return obj


def status_messages(operator: Process) -> float:
    """Every status message the operator took off the broker so far, whatever it did with it.
    ``folded`` is left out: it counts writes saved, of messages already counted ``applied``."""
    return sum(
        v
        for (name, labels), v in scrape(operator.env).items()
        if name == STATUS_MESSAGES and ("result", "folded") not in labels
    )


def test_progress(
    control_plane: ControlPlane,
    cf_ns: str,
    worker: ConformanceWorker,
    conformance_operator: Process,
) -> None:
    before = status_messages(conformance_operator)
    steps = list(range(5, 100, 5))  # 19 reports, 150 ms apart: far more than 2 a second
    create(
        control_plane,
        cf_ns,
        "p",
        queue="conformance.progress",
        request={"steps": steps, "intervalMs": 150},
    )
    seen: list[tuple[str, int, str]] = []

    def ended() -> bool:
        st = status(control_plane, cf_ns, "p")
        seen.append((st.get("phase", ""), int(st.get("progress") or 0), st.get("message") or ""))
        return st.get("phase") == "Succeeded"

    wait_until("p to succeed", ended, 60, interval=0.1)
    st = status(control_plane, cf_ns, "p")
    assert (st["progress"], st["result"], st["attempts"]) == (100, {"steps": 19}, 1)
    values = [p for _, p, _ in seen]
    assert values == sorted(values), f"progress went backwards: {values}"
    during = {(p, m) for phase, p, m in seen if phase == "Processing" and 0 < p < 100}
    assert during, f"no progress was seen while it ran: {seen}"
    assert all(m == f"step {p}" for p, m in during), during
    # Rate limit: at most one progress message per 0.5 s of the run (plus the first), one
    # Processing and one terminal message. The operator counts what it received; nothing
    # else runs on the suite's broker now.
    took = seconds(st, "startTime", "completionTime")
    wait_until(
        "the terminal message counted", lambda: status_messages(conformance_operator) > before
    )
    sent = status_messages(conformance_operator) - before
    print(
        f"\nprogress: {sent:.0f} status messages for 19 reports in {took:.2f}s; "
        f"seen {sorted(during)}"
    )
    assert sent <= took / 0.5 + 3, (sent, took)


def test_success(
    control_plane: ControlPlane, cf_ns: str, worker: ConformanceWorker, broker: Broker
) -> None:
    request = {"text": "héllo", "n": [1, 2.5, None, True], "nested": {"a": {"b": []}}}
    create(control_plane, cf_ns, "ok", queue="conformance.echo", request=request)
    st = wait_phase(control_plane, cf_ns, "ok", "Succeeded", timeout=60)
    assert (st["result"], st["progress"], st["attempts"]) == (request, 100, 1)
    assert st.get("worker") and seconds(st, "startTime", "completionTime") >= 0
    wait_until("the delivery acked", lambda: broker.held("conformance.echo") == 0, 30)


def test_a_short_task_sends_only_its_end(
    control_plane: ControlPlane,
    cf_ns: str,
    worker: ConformanceWorker,
    conformance_operator: Process,
) -> None:
    """Within its start window (docs/protocol.md), an attempt's Processing is withheld: a
    task that ends within it costs one status message, and still shows when it started."""
    before = status_messages(conformance_operator)
    create(control_plane, cf_ns, "short", queue="conformance.echo", request={"n": 1})
    st = wait_phase(control_plane, cf_ns, "short", "Succeeded", timeout=60)
    assert st["attempts"] == 1 and seconds(st, "startTime", "completionTime") >= 0
    assert seconds(st, "startTime", "completionTime") < START_REPORT_SECONDS
    wait_until("its end counted", lambda: status_messages(conformance_operator) > before)
    assert status_messages(conformance_operator) - before == 1  # no Processing


def test_business_failure_vs_crash(
    control_plane: ControlPlane, cf_ns: str, worker: ConformanceWorker
) -> None:
    fail = {"reason": "OutOfStock", "message": "no more cats"}
    create(
        control_plane,
        cf_ns,
        "no",
        queue="conformance.fail",
        request=fail,
        retries=2,
        retryBackoffSeconds=1,
    )
    crash = {"message": "the disk caught fire"}
    create(
        control_plane,
        cf_ns,
        "boom",
        queue="conformance.crash",
        request=crash,
        retries=1,
        retryBackoffSeconds=1,
    )
    st = wait_phase(control_plane, cf_ns, "no", "Failed", timeout=60)
    assert (st["error"]["reason"], st["error"]["message"], st["attempts"]) == (
        "OutOfStock",
        "no more cats",
        1,
    ), st  # Failed is terminal: never retried although spec.retries allows two more
    st = wait_phase(control_plane, cf_ns, "boom", "Error", timeout=60)
    assert st["attempts"] == 2, st  # retried once, as spec.retries says, then Error
    assert st["error"]["reason"] and "the disk caught fire" in st["error"]["message"], st


def test_result_size(
    control_plane: ControlPlane, cf_ns: str, worker: ConformanceWorker, broker: Broker
) -> None:
    create(control_plane, cf_ns, "fits", queue="conformance.big", request={"bytes": 60_000})
    # The suite's operator has object storage on, so its task messages carry a grant and a
    # large result would be stored (test_payloads.py). The limit holds for a task message
    # without one (storage off): the suite publishes it itself, for a parked task.
    huge = park(control_plane, cf_ns, "huge", retries=0)
    broker.publish_task(huge, "conformance.big", {"bytes": 70_000})
    st = wait_phase(control_plane, cf_ns, "huge", "Error", timeout=60)
    assert st["error"]["reason"] == "ResultTooLarge", st["error"]
    assert "ASYNCTASK_S3_ENDPOINT" in st["error"]["message"], st["error"]  # how to store it
    assert "result" not in st or st["result"] is None
    st = wait_phase(control_plane, cf_ns, "fits", "Succeeded", timeout=60)
    assert st["result"] == {"data": "x" * 60_000}  # under the 65536 characters: kept whole
    wait_until("both deliveries acked", lambda: broker.held("conformance.big") == 0, 30)


def test_time_limit(
    control_plane: ControlPlane, cf_ns: str, worker: ConformanceWorker, broker: Broker
) -> None:
    # The operator enforces spec.timeoutSeconds too, from the startTime the worker gave, and
    # usually writes TimedOut (DeadlineExceeded) first. So the worker's own limit is shown
    # with a task message the suite publishes itself, with timeout_seconds the task's spec
    # lacks: only the worker can end it. Its real task is parked on a queue nobody serves.
    create(
        control_plane,
        cf_ns,
        "slow",
        queue="conformance.sleep",
        request={"seconds": 30},
        timeoutSeconds=2,
    )
    parked = park(control_plane, cf_ns, "own-limit")
    broker.publish_task(parked, "conformance.sleep", {"seconds": 30}, timeout_seconds=2)
    st = wait_phase(control_plane, cf_ns, "own-limit", "TimedOut", timeout=30)
    assert st["error"]["reason"] == "TimeLimitExceeded", st["error"]
    assert st["attempts"] == 1 and 2 <= seconds(st, "startTime", "completionTime") < 12, st
    st = wait_phase(control_plane, cf_ns, "slow", "TimedOut", timeout=30)
    assert st["error"]["reason"] in ("DeadlineExceeded", "TimeLimitExceeded"), st["error"]
    wait_until("both deliveries acked", lambda: broker.held("conformance.sleep") == 0, 30)


def test_hard_stop(control_plane: ControlPlane, cf_ns: str, worker: ConformanceWorker) -> None:
    create(control_plane, cf_ns, "deaf", queue="conformance.stubborn", request={"seconds": 15})
    wait_phase(control_plane, cf_ns, "deaf", "Processing", timeout=30)
    asked = time.monotonic()
    patch_spec(control_plane, cf_ns, "deaf", {"cancel": True})
    st = wait_phase(control_plane, cf_ns, "deaf", "Cancelled", timeout=30)
    took = time.monotonic() - asked
    print(f"\nhard stop: Cancelled {took:.1f}s after the cancel (cancel grace 2s)")
    # The worker waited its cancel grace (2 s) for a handler that never looks, then reported
    # Cancelled itself: before the operator's own fallback, and with its own reason.
    assert 2 <= took < OPERATOR_CANCEL_FALLBACK[0], took
    assert st["error"]["reason"] != OPERATOR_CANCEL_FALLBACK[1], st["error"]


def bad_messages(cp: ControlPlane, ns: str, queue: str) -> dict[str, tuple[TaskRef, bytes, str]]:
    """Two tasks parked on a queue nobody serves, and a bad task message naming each:
    one unreadable (named by its headers only), one of a protocol version no worker
    speaks yet. (name → task, body, the reason the worker must give.)"""
    out = {}
    for name, reason in (("unreadable", "NotJson"), ("future", "UnknownVersion")):
        meta = park(cp, ns, name)["metadata"]
        ref = TaskRef(uid=meta["uid"], namespace=ns, name=name)
        body = b"{not json"
        if reason == "UnknownVersion":
            msg = TaskMessage(task=ref, queue=queue, request=None, attempt=1)
            body = json.dumps({**json.loads(encode(msg)), "v": 2}).encode()
        out[name] = (ref, body, reason)
    return out


def test_malformed_messages(
    control_plane: ControlPlane, cf_ns: str, worker: ConformanceWorker, broker: Broker
) -> None:
    queue = "conformance.echo"
    bad = bad_messages(control_plane, cf_ns, queue)
    for ref, body, _ in bad.values():
        broker.publish(queue, body, f"task:{ref.uid}:1", task_headers(ref, 1))
    for name, (_, _, reason) in bad.items():
        st = wait_phase(control_plane, cf_ns, name, "Error", timeout=60)
        assert st["error"]["reason"] == "MalformedTaskMessage", st["error"]
        assert reason in st["error"]["message"], st["error"]
    letters = dict(broker.dead_letters())
    for name, (ref, _, reason) in bad.items():
        headers = letters.get(f"task:{ref.uid}:1")
        assert headers is not None, f"no dead letter for {name}: {sorted(map(str, letters))}"
        assert headers[topology.DEAD_REASON_HEADER] == reason, headers
        assert headers[topology.DEAD_DETAIL_HEADER], headers
        assert str(headers[topology.DEAD_BY_HEADER]).startswith("worker "), headers
        assert headers[topology.DEAD_QUEUE_HEADER] == topology.task_queue_name(queue), headers
    wait_until("the bad messages acked", lambda: broker.held(queue) == 0, 30)
    create(control_plane, cf_ns, "after", queue=queue, request="still serving")
    st = wait_phase(control_plane, cf_ns, "after", "Succeeded", timeout=60)
    assert st["result"] == "still serving"
