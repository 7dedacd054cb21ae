"""Conformance cases about deliveries, each with workers of its own serving
``conformance.mark`` (docs/conformance.md): cooperative cancel, redelivery after a kill,
duplicate delivery, SIGTERM drain and a broker restart. ``conformance.mark`` writes one
line per run to a file, so the suite counts runs (and their attempts) from outside; the
rest is read from the AsyncTask status and the suite's RabbitMQ."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from testbed import ControlPlane, RabbitMQ, wait_until
from tests.conformance.conftest import MakeWorker
from tests.conformance.harness import MARK, Broker, runs_of
from tests.e2e.system import Process
from tests.e2e.tasks import create, patch_spec, status, wait_phase

pytestmark = pytest.mark.e2e

#: The operator records Cancelled itself this long after a cancel no worker confirmed, with
#: this reason (ASYNCTASK_CANCEL_CONFIRM_SECONDS): a Cancelled sooner and with another
#: reason was reported by the worker.
OPERATOR_CANCEL_FALLBACK = (45, "CancelRequested")


def mark(cp: ControlPlane, ns: str, name: str, path: Path, seconds: float) -> dict[str, Any]:
    return create(cp, ns, name, queue=MARK, request={"path": str(path), "seconds": seconds})


def test_cooperative_cancel(
    control_plane: ControlPlane, cf_ns: str, make_worker: MakeWorker, broker: Broker, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    make_worker(concurrency=1)  # one slot, prefetch 1: a second task waits in the queue
    running = mark(control_plane, cf_ns, "running", runs, 60)
    wait_until("running to start", lambda: runs_of(runs, running) == [1], 30)
    queued = mark(control_plane, cf_ns, "queued", runs, 0)
    wait_until("queued to wait in the queue", lambda: broker.ready(MARK) == 1, 30)
    patch_spec(control_plane, cf_ns, "queued", {"cancel": True})
    wait_phase(control_plane, cf_ns, "queued", "Cancelled", timeout=30)
    asked = time.monotonic()
    patch_spec(control_plane, cf_ns, "running", {"cancel": True})
    st = wait_phase(control_plane, cf_ns, "running", "Cancelled", timeout=30)
    took = time.monotonic() - asked
    print(f"\ncooperative cancel: Cancelled {took:.1f}s after the cancel")
    assert took < OPERATOR_CANCEL_FALLBACK[0] and st["error"]["reason"] != "CancelRequested", st
    # The worker now gets the cancelled task's message: it must settle it without running
    # it. With one slot, a task created after it runs only once that message is acked.
    after = mark(control_plane, cf_ns, "after", runs, 0)
    wait_phase(control_plane, cf_ns, "after", "Succeeded", timeout=60)
    assert (runs_of(runs, queued), runs_of(runs, after)) == ([], [1])
    assert runs_of(runs, running) == [1] and broker.ready(MARK) == 0


def test_redelivery_after_a_kill(
    control_plane: ControlPlane, cf_ns: str, make_worker: MakeWorker, broker: Broker, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    worker = make_worker(concurrency=1)
    task = mark(control_plane, cf_ns, "survivor", runs, 5)
    wait_until("the first run to start", lambda: runs_of(runs, task) == [1], 30)
    worker.kill()
    worker.restart()
    st = wait_phase(control_plane, cf_ns, "survivor", "Succeeded", timeout=60)
    assert runs_of(runs, task) == [1, 2], runs.read_text()  # the next attempt, not attempt 1
    assert (st["attempts"], st["result"]) == (2, {"marked": True}), st
    assert broker.ready(MARK) == 0


def test_duplicate_delivery(
    control_plane: ControlPlane, cf_ns: str, make_worker: MakeWorker, broker: Broker, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    worker = make_worker(concurrency=2)  # a free slot takes the duplicate while it runs
    request = {"path": str(runs), "seconds": 4}
    task = create(control_plane, cf_ns, "once", queue=MARK, request=request)
    wait_until("the run to start", lambda: runs_of(runs, task) == [1], 30)
    # The same task message again, as the operator sends it again after a crash between
    # publishing and recording: first while the attempt runs here (adopted), then after
    # it ended here (acked without running).
    broker.publish_task(task, MARK, request)
    wait_until("the duplicate delivered", lambda: broker.ready(MARK) == 0, 30)
    st = wait_phase(control_plane, cf_ns, "once", "Succeeded", timeout=60)
    broker.publish_task(task, MARK, request)
    wait_until("the late duplicate delivered", lambda: broker.ready(MARK) == 0, 30)
    after = mark(control_plane, cf_ns, "after", runs, 0)
    wait_phase(control_plane, cf_ns, "after", "Succeeded", timeout=60)
    assert (runs_of(runs, task), runs_of(runs, after)) == ([1], [1]), runs.read_text()
    assert status(control_plane, cf_ns, "once") == st  # nothing more was reported
    # A drained worker closes its connection; a delivery it never acked would be back.
    worker.terminate(timeout=60)
    assert broker.ready(MARK) == 0


def test_sigterm_drain(
    control_plane: ControlPlane, cf_ns: str, make_worker: MakeWorker, broker: Broker, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    worker = make_worker(concurrency=2, grace_period=5)
    short = mark(control_plane, cf_ns, "short", runs, 3)  # ends within the grace period
    long = mark(control_plane, cf_ns, "long", runs, 60)  # does not
    wait_until("both to run", lambda: runs_of(runs, short) == runs_of(runs, long) == [1], 30)
    worker.terminate(timeout=5 + 10 + 30)  # the grace period, the protocol's 10 s, a margin
    st = status(control_plane, cf_ns, "short")
    assert (st["phase"], st["attempts"]) == ("Succeeded", 1), st
    st = status(control_plane, cf_ns, "long")
    assert (st["phase"], st["attempts"]) == ("Processing", 1), st  # requeued, unreported
    assert broker.ready(MARK) == 1
    # The requeued message is a new attempt for the next worker; cancelled meanwhile, it
    # is settled without running.
    patch_spec(control_plane, cf_ns, "long", {"cancel": True})
    worker.restart()
    st = wait_phase(control_plane, cf_ns, "long", "Cancelled", timeout=30)
    assert st["error"]["reason"] != "CancelRequested", st  # the worker's, not the fallback
    assert runs_of(runs, long) == [1] and runs_of(runs, short) == [1], runs.read_text()
    assert broker.ready(MARK) == 0


def test_broker_restart(
    control_plane: ControlPlane,
    cf_ns: str,
    make_worker: MakeWorker,
    broker: Broker,
    conformance_rabbitmq: RabbitMQ,
    conformance_operator: Process,
    tmp_path: Path,
) -> None:
    runs = tmp_path / "runs"
    worker = make_worker(concurrency=1)
    task = mark(control_plane, cf_ns, "through", runs, 4)  # ends while the broker is down
    wait_until("the run to start", lambda: runs_of(runs, task) == [1], 30)
    conformance_rabbitmq.restart()  # stops (about 6 s here), starts on the same port and data
    conformance_operator.wait_ready(90)
    worker.wait_serving(90)
    st = wait_phase(control_plane, cf_ns, "through", "Succeeded", timeout=90)
    assert st["result"] == {"marked": True} and runs_of(runs, task) == [1], runs.read_text()
    after = mark(control_plane, cf_ns, "after", runs, 0)
    wait_phase(control_plane, cf_ns, "after", "Succeeded", timeout=60)
    assert runs_of(runs, after) == [1] and broker.ready(MARK) == 0
    assert worker.process.alive()
