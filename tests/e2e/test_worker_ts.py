"""The TypeScript worker SDK (worker-ts/) end to end, as the issue's proof asks: a task
submitted through the gateway is handled by a TypeScript worker, with its progress visible
over SSE; a cancel through the gateway stops it (the worker's own Cancelled, long before the
operator's 45 s fallback); a worker killed mid-task leaves the message to be redelivered, and
the next worker runs it as the next attempt.

The worker is ``worker-ts/dist/conformance/worker.js`` (the conformance suite's handlers),
built here with ``npm run build``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pika
import pytest

from asynctask_worker import topology
from testbed import ControlPlane, RabbitMQ, wait_until
from tests.e2e.gateway_client import sse_path
from tests.e2e.system import REPO, Process, running, system_env
from tests.e2e.tasks import status, wait_phase

if TYPE_CHECKING:
    from tests.e2e.gateway_client import Event, Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures"]  # gateway

WORKER_TS = REPO / "worker-ts"
QUEUES = ("conformance.progress", "conformance.sleep", "conformance.mark")
TERMINAL = {"Succeeded", "Failed", "Error", "Cancelled", "TimedOut"}


@pytest.fixture(scope="module")
def built() -> Path:
    npm = shutil.which("npm")
    assert npm, "npm is needed to build worker-ts/"
    subprocess.run([npm, "run", "build"], cwd=WORKER_TS, check=True, timeout=300)
    return WORKER_TS / "dist" / "conformance" / "worker.js"


def consuming(url: str) -> Callable[[], bool]:
    """Ready: every queue of the worker has a consumer (the broker's count)."""

    def check() -> bool:
        conn = pika.BlockingConnection(pika.URLParameters(url))
        try:
            ch = conn.channel()
            return all(
                ch.queue_declare(topology.task_queue_name(q), passive=True).method.consumer_count
                > 0
                for q in QUEUES
            )
        except pika.exceptions.ChannelClosedByBroker:
            return False
        finally:
            conn.close()

    return check


@pytest.fixture
def ts_worker(
    built: Path,
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    tmp_path: Path,
) -> Iterator[Process]:
    env = dict(
        system_env(control_plane, rabbitmq),
        ASYNCTASK_WORKER_QUEUES=",".join(QUEUES),
        ASYNCTASK_WORKER_CONCURRENCY="2",
        ASYNCTASK_WORKER_CANCEL_GRACE_SECONDS="2",
    )
    with running(
        f"ts-worker-{uuid.uuid4().hex[:6]}",
        ["node", str(built)],
        env,
        tmp_path,
        ready=consuming(rabbitmq.url),
    ) as proc:
        yield proc


def submit(gw: Gateway, queue: str, request: Any) -> str:
    answer = gw.call("POST", gw.tasks(), {"queue": queue, "request": request})
    assert answer.status == 202, answer.body
    name: str = answer.json()["name"]
    return name


def test_progress_over_sse_then_success(gateway: Gateway, ts_worker: Process) -> None:
    name = submit(gateway, "conformance.progress", {"steps": [20, 40, 60], "intervalMs": 800})
    seen: list[Event] = []
    for event in gateway.events(sse_path(gateway, name)):
        seen.append(event)
        if event.view["phase"] in TERMINAL:
            break
    progress = [
        (e.view["progress"], e.view.get("message"))
        for e in seen
        if e.view["phase"] == "Processing" and (e.view.get("progress") or 0) > 0
    ]
    assert progress, [(e.event, e.view["phase"], e.view.get("progress")) for e in seen]
    assert all(msg == f"step {p}" for p, msg in progress), progress
    last = seen[-1].view
    assert (last["phase"], last["progress"], last["result"]) == ("Succeeded", 100, {"steps": 3})


def test_a_cancel_through_the_gateway_stops_the_handler(
    control_plane: ControlPlane, gateway: Gateway, ts_worker: Process
) -> None:
    name = submit(gateway, "conformance.sleep", {"seconds": 120})
    wait_phase(control_plane, gateway.namespace, name, "Processing")
    answer = gateway.call("POST", f"{gateway.tasks()}/{name}/cancel")
    assert answer.status == 202, answer.body
    # The worker's Cancelled (reason Cancelled), not the operator's fallback after 45 s.
    st = wait_phase(control_plane, gateway.namespace, name, "Cancelled", timeout=40)
    assert st["error"]["reason"] == "Cancelled", st
    assert st.get("worker"), st


def test_a_killed_worker_leaves_the_task_to_be_redelivered(
    control_plane: ControlPlane, gateway: Gateway, ts_worker: Process, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    name = submit(gateway, "conformance.mark", {"path": str(marks), "seconds": 60})
    wait_until("the first run began", lambda: marks.exists() and marks.read_text().strip(), 60)
    ts_worker.proc.send_signal(signal.SIGKILL)  # no goodbye: the delivery is left unacked
    ts_worker.proc.wait(30)
    ts_worker.restart()
    ts_worker.wait_ready(60)
    wait_until("the second run began", lambda: len(marks.read_text().split("\n")) > 2, 60)
    runs = [line.split()[1] for line in marks.read_text().splitlines()]
    assert runs == ["1", "2"], runs
    # The operator shows the second attempt once it has applied its start: that can come
    # after the run began (the worker marks at once; a start within a second of the
    # publish waits out the publish's fold window, ASYNCTASK_PUBLISH_FOLD_SECONDS).
    seen: list[dict[str, Any]] = []

    def second_attempt_shown() -> bool:
        seen.append(status(control_plane, gateway.namespace, name))
        return (seen[-1].get("phase"), seen[-1].get("attempts")) == ("Processing", 2)

    try:
        wait_until("attempt 2 shown Processing", second_attempt_shown, 30)
    except RuntimeError as exc:
        raise AssertionError(f"{exc}; the last status read: {seen[-1]}") from exc
    # Proven; stop it rather than wait a minute.
    assert gateway.call("POST", f"{gateway.tasks()}/{name}/cancel").status == 202
    wait_phase(control_plane, gateway.namespace, name, "Cancelled", timeout=40)
