"""The worker SDK on the real control plane and RabbitMQ (issue 4): progress in
``kubectl get``, cancellation of Pending and running (sync and async) handlers, and the
workers of the README and of docs/writing-a-worker.md run with their documented commands."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from asynctask_worker import topology
from testbed import ControlPlane, RabbitMQ, wait_until
from testbed._proc import free_port
from tests.e2e.system import Process, running, system_env, worker_ready
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
from tests.unit.worker.test_docs import GUIDE, blocks, guide_commands, readme_blocks

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

#: What a worker logs when it acks a revoked task's message without running it.
SKIPPED = "task {ns}/{name}: Cancelled before it started: acked without running the handler"
#: What a worker logs when a handler ignored its cancellation (a hard stop followed).
HARD_STOP = "did not stop within"


@pytest.fixture(scope="module")
def worker_markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Marker and gate files of the handlers in worker_app.py."""
    return tmp_path_factory.mktemp("worker-markers")


@pytest.fixture(scope="module")
def sdk_worker(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    worker_markers: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    """A worker for the stepwise and async handlers of worker_app.py."""
    env = dict(system_env(control_plane, rabbitmq), WORKER_E2E_MARKERS=str(worker_markers))
    port = free_port()
    with running(
        "sdk-worker",
        [
            sys.executable,
            "-m",
            "asynctask_worker",
            "tests.e2e.worker_app:app",
            "--concurrency",
            "4",
            "--queues",
            "stepwise,async-sleeper",
            "--metrics-port",
            str(port),
        ],
        env,
        tmp_path_factory.mktemp("sdk-worker"),
        ready=worker_ready(port),
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def readme_worker(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    """The README's worker, started with the README's command (its `asynctask-worker`
    line, as written; the AMQP URL from the variable the README exports)."""
    (sh,) = readme_blocks("sh")
    assert "export ASYNCTASK_WORKER_AMQP_URL=" in sh
    (command,) = [line for line in sh.splitlines() if line.startswith("asynctask-worker ")]
    argv = shlex.split(command)
    script = Path(sys.executable).with_name("asynctask-worker")  # the project's entry point
    env = system_env(control_plane, rabbitmq)  # sets ASYNCTASK_WORKER_AMQP_URL
    port = free_port()  # metrics from the environment: the command stays as written
    env["ASYNCTASK_WORKER_METRICS_PORT"] = str(port)
    with running(
        "readme-worker",
        [str(script), *argv[1:]],
        env,
        tmp_path_factory.mktemp("readme-worker"),
        ready=worker_ready(port),
    ) as proc:
        yield proc


@pytest.fixture(scope="module")
def thumbnails_worker(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    """The guide's thumbnails worker, started with the guide's first command as written."""
    argv = guide_commands()[0]
    assert argv[0] == "asynctask-worker"
    script = Path(sys.executable).with_name("asynctask-worker")
    port = free_port()  # metrics from the environment: the command stays as written
    env = dict(system_env(control_plane, rabbitmq), ASYNCTASK_WORKER_METRICS_PORT=str(port))
    with running(
        "thumbnails-worker",
        [str(script), *argv[1:]],
        env,
        tmp_path_factory.mktemp("thumbnails"),
        ready=worker_ready(port),
    ) as proc:
        yield proc


def kubectl_bin(cp: ControlPlane) -> str:
    assert cp.bin_dir is not None
    return str(cp.bin_dir / "kubectl")


def columns(cp: ControlPlane, ns: str, name: str) -> dict[str, str]:
    """One task's printer columns, as ``kubectl get -o wide`` shows them (by header)."""
    header, row = cp.kubectl("get", "asynctask", name, "-n", ns, "-o", "wide").stdout.splitlines()
    heads = list(re.finditer(r"\S+", header))  # column names have no spaces; values may
    ends = [h.start() for h in heads[1:]] + [len(row)]
    return {h.group(): row[h.start() : end].strip() for h, end in zip(heads, ends, strict=True)}


def queue_messages(rabbitmq: RabbitMQ, queue: str) -> int:
    """Messages in a task queue, ready or delivered and not acked yet, from the management
    API (its figures for quorum queues lag a few seconds behind)."""
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(rabbitmq.url).path[1:]) or "/"
    return int(rabbitmq.queue(vhost, topology.task_queue_name(queue)).get("messages", 0))


# progress in kubectl get ------------------------------------------------------------------


@contextlib.contextmanager
def kubectl_watch(cp: ControlPlane, namespace: str, out_path: Path) -> Iterator[None]:
    """A ``kubectl get asynctasks -w`` of the namespace running, its output in
    ``out_path``; ended on leaving."""
    with out_path.open("w") as out:
        watch = subprocess.Popen(
            [kubectl_bin(cp), "get", "asynctasks", "-n", namespace, "-w"],
            env=cp.env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        yield
    finally:
        watch.terminate()
        watch.wait(10)


def watched_rows(out_path: Path, name: str) -> list[tuple[str, int]]:
    """(PHASE, PROGRESS) of a watch's complete rows for the task ``name``, in order."""
    return [
        (f[2], int(f[3]))
        for f in map(str.split, out_path.read_text().splitlines())
        if len(f) == 5 and f[0] == name and f[3].isdigit()
    ]


def progress_shown(cp: ControlPlane, ns: str, name: str, percent: int) -> Callable[[], bool]:
    """Whether ``kubectl get`` shows the task Processing at ``percent``."""

    def check() -> bool:
        c = columns(cp, ns, name)
        return c["PHASE"] == "Processing" and c["PROGRESS"] == str(percent)

    return check


def row_watched(out_path: Path, name: str, row: tuple[str, int]) -> Callable[[], bool]:
    return lambda: row in watched_rows(out_path, name)


def test_progress_shows_in_kubectl_get_while_the_handler_runs(
    control_plane: ControlPlane, namespace: str, sdk_worker: Process, worker_markers: Path
) -> None:
    """The handler reports 10%, 50%, 90% (with a message, at least 1 s apart) and after
    each waits until the test saw it: in ``kubectl get`` (PHASE, PROGRESS, and MESSAGE of
    ``-o wide``) and as a row of a running ``kubectl get asynctasks -w``."""
    watch_out = worker_markers / f"{namespace}.watch"
    with kubectl_watch(control_plane, namespace, watch_out):
        create(control_plane, namespace, "steps", queue="stepwise", request={})
        created = time.monotonic()
        seen: dict[int, float] = {}
        for percent in (10, 50, 90):
            wait_until(
                f"PROGRESS {percent} while Processing",
                progress_shown(control_plane, namespace, "steps", percent),
                60,
                interval=0.1,
            )
            seen[percent] = time.monotonic() - created
            assert columns(control_plane, namespace, "steps")["MESSAGE"] == f"reached {percent}%"
            wait_until(
                f"the watch to show {percent}",
                row_watched(watch_out, "steps", ("Processing", percent)),
                15,
                interval=0.1,
            )
            (worker_markers / f"{namespace}.steps.seen-{percent}").touch()  # go on
        st = wait_phase(control_plane, namespace, "steps", "Succeeded", timeout=60)
        final = columns(control_plane, namespace, "steps")
        assert (final["PHASE"], final["PROGRESS"]) == ("Succeeded", "100")
        assert st["result"] == {"reported": [10, 50, 90]}
        wait_until(
            "the watch to show Succeeded", row_watched(watch_out, "steps", ("Succeeded", 100)), 15
        )
    output = watch_out.read_text()
    print(
        f"\nPROGRESS seen by kubectl get at "
        f"{', '.join(f'{p}% {t:.1f}s' for p, t in seen.items())} after create\n{output}"
    )
    assert output.splitlines()[0].split() == ["NAME", "QUEUE", "PHASE", "PROGRESS", "AGE"]
    rows = watched_rows(watch_out, "steps")
    processing = [p for phase, p in rows if phase == "Processing"]
    assert [p for p in processing if 0 < p < 100] == [10, 50, 90], output
    assert processing == sorted(processing), output
    assert rows[-1] == ("Succeeded", 100), output


# cancellation ---------------------------------------------------------------------------


def cancel_while_pending(
    cp: ControlPlane, rabbitmq: RabbitMQ, namespace: str, name: str, queue: str
) -> tuple[dict[str, Any], str]:
    """Create a task of ``queue`` (which nobody serves) and cancel it while its message waits
    there; returns its Cancelled status and its resourceVersion then. On return, the
    management API counts the message: from then on, 0 there means acked."""
    create(cp, namespace, name, queue=queue, request={})
    wait_phase(cp, namespace, name, "Pending")
    assert ready_messages(rabbitmq, queue) == 1  # the task message waits in its queue
    patch_spec(cp, namespace, name, {"cancel": True})
    cancelled = wait_phase(cp, namespace, name, "Cancelled", timeout=30)
    assert (cancelled["error"]["reason"], cancelled["attempts"]) == ("CancelRequested", 0)
    version = str(get(cp, namespace, name)["metadata"]["resourceVersion"])
    assert ready_messages(rabbitmq, queue) == 1  # still there: nobody consumed it
    # The management API's count (ready + unacked) catches up.
    wait_until(
        "the management API to count the message",
        lambda: queue_messages(rabbitmq, queue) == 1,
        30,
        interval=0.5,
    )
    return cancelled, version


def late_worker(
    cp: ControlPlane, rabbitmq: RabbitMQ, markers: Path, queue: str, logdir: Path
) -> Process:
    """A worker of tests/e2e/worker_app.py serving only ``queue``, started now."""
    env = dict(
        system_env(cp, rabbitmq),
        WORKER_E2E_MARKERS=str(markers),
        WORKER_E2E_NEVER_RUNS_QUEUE=queue,
    )
    port = free_port()
    args = ["-m", "asynctask_worker", "tests.e2e.worker_app:app", "--queues", queue]
    return Process(
        "late-worker",
        [sys.executable, *args, "--metrics-port", str(port)],
        env,
        logdir,
        worker_ready(port),
    )


def test_a_task_cancelled_while_pending_never_runs(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    namespace: str,
    worker_markers: Path,
    operator: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Nobody serves the queue; the task is cancelled while its message waits there. A
    worker that starts afterwards reads the cancellation from the control stream, acks the
    message without calling the handler, and the record stays Cancelled."""
    queue = f"never-runs-{namespace}"  # this test's own queue: nothing else serves it
    cancelled, version = cancel_while_pending(control_plane, rabbitmq, namespace, "skipped", queue)
    counted = Counted(operator.env)
    late = late_worker(
        control_plane, rabbitmq, worker_markers, queue, tmp_path_factory.mktemp("late-worker")
    )
    try:
        late.wait_ready()
        serving = time.monotonic()
        late.wait_for_log(SKIPPED.format(ns=namespace, name="skipped"), 30)
        skipped = time.monotonic() - serving
        took = wait_until(
            "the message to be acked",
            lambda: queue_messages(rabbitmq, queue) == 0,
            30,
            interval=0.5,
        )
        print(
            f"\ncancelled while Pending: a worker started later skipped its message "
            f"{skipped:.2f}s after it began serving (acked, as the management API showed "
            f"{took:.1f}s later)"
        )
        assert not (worker_markers / f"{namespace}.skipped.ran").exists()
        # The worker's Cancelled report reached the operator, which had nothing to write.
        counted.wait(1, STATUS_MESSAGES, result="ignored")
        after = get(control_plane, namespace, "skipped")
        assert after["status"] == cancelled
        assert after["metadata"]["resourceVersion"] == version

        # The same worker runs a task of that queue that was not cancelled: the handler
        # above was skipped, not unable to run.
        create(control_plane, namespace, "runs", queue=queue, request={})
        wait_phase(control_plane, namespace, "runs", "Succeeded", timeout=60)
        assert (worker_markers / f"{namespace}.runs.ran").exists()
        assert not (worker_markers / f"{namespace}.skipped.ran").exists()
        assert "did not catch up with the control stream" not in late.text()
    finally:
        late.stop()
        print(f"--- late worker log (tail) ---\n{late.text()[-2000:]}")


def test_cancel_a_running_async_handler(
    control_plane: ControlPlane, namespace: str, sdk_worker: Process, worker_markers: Path
) -> None:
    create(control_plane, namespace, "awaiting", queue="async-sleeper", request={"seconds": 120})
    wait_phase(control_plane, namespace, "awaiting", "Processing")
    wait_until(
        "the handler to start", (worker_markers / f"{namespace}.awaiting.started").exists, 15
    )
    asked = time.monotonic()
    patch_spec(control_plane, namespace, "awaiting", {"cancel": True})
    st = wait_phase(control_plane, namespace, "awaiting", "Cancelled", timeout=30)
    took = time.monotonic() - asked
    print(f"\ncancel of a running async handler: Cancelled after {took:.2f}s")
    assert st["error"]["reason"] == "Cancelled"  # confirmed by the worker
    # The coroutine got CancelledError at its await: no hard stop was needed.
    assert (worker_markers / f"{namespace}.awaiting.cancelled").exists()
    assert not (worker_markers / f"{namespace}.awaiting.finished").exists()
    assert not [
        line
        for line in sdk_worker.text().splitlines()
        if f"{namespace}/awaiting" in line and HARD_STOP in line
    ]
    assert took < 10, f"Cancelled only after {took:.2f}s"


# the README's worker, as written -----------------------------------------------------------


def test_the_readme_worker_succeeds(
    control_plane: ControlPlane, namespace: str, readme_worker: Process
) -> None:
    (manifest,) = readme_blocks("yaml")
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    st = wait_phase(control_plane, namespace, "greet-ada", "Succeeded", timeout=60)
    assert st["result"] == {"greeting": "Hello, Ada!"}
    assert (st["progress"], st["message"], st["attempts"]) == (100, "Succeeded", 1)


def test_the_readme_worker_fails_the_business_way(
    control_plane: ControlPlane, namespace: str, readme_worker: Process
) -> None:
    create(
        control_plane,
        namespace,
        "nobody",
        queue="greet",
        request={"name": "nobody"},
        retries=2,
        retryBackoffSeconds=1,
    )
    st = wait_phase(control_plane, namespace, "nobody", "Failed")
    assert st["error"]["reason"] == "UnknownName"
    assert st["error"]["message"] == "nobody cannot be greeted"
    time.sleep(2)  # Failed is never retried
    st = status(control_plane, namespace, "nobody")
    assert (st["phase"], st["attempts"]) == ("Failed", 1)


def test_cancel_the_running_readme_worker(
    control_plane: ControlPlane, namespace: str, readme_worker: Process
) -> None:
    """A sync handler that checks ctx.raise_if_cancelled() between one-second steps."""
    create(
        control_plane,
        namespace,
        "long",
        queue="greet",
        request={"name": "Grace", "steps": 100, "step_seconds": 1},
    )
    wait_until(
        "the first step's progress",
        lambda: (
            (c := columns(control_plane, namespace, "long"))["PHASE"] == "Processing"
            and c["PROGRESS"] not in ("", "0")
        ),
        60,
        interval=0.2,
    )
    asked = time.monotonic()
    patch_spec(control_plane, namespace, "long", {"cancel": True})
    st = wait_phase(control_plane, namespace, "long", "Cancelled", timeout=30)
    took = time.monotonic() - asked
    print(f"\ncancel of a running sync handler (1 s steps): Cancelled after {took:.2f}s")
    assert st["error"]["reason"] == "Cancelled"  # confirmed by the worker
    assert 0 < st["progress"] < 100
    log = readme_worker.text()
    assert f"task {namespace}/long attempt 1: Cancelled" in log
    assert not [
        line for line in log.splitlines() if f"{namespace}/long" in line and HARD_STOP in line
    ]
    assert took < 10, f"Cancelled only after {took:.2f}s"


# the guide's worker (docs/writing-a-worker.md), as documented ------------------------------


def test_the_guide_thumbnails_worker_runs_the_guide_manifest(
    control_plane: ControlPlane, namespace: str, thumbnails_worker: Process, tmp_path: Path
) -> None:
    """The guide's manifest (its image paths moved to this test's folder) through the
    guide's worker command: Succeeded, .status.result holds what the handler returned."""
    (manifest,) = blocks(GUIDE.read_text(), "yaml")
    task = yaml.safe_load(manifest)
    name, request = task["metadata"]["name"], task["spec"]["request"]
    source, out = tmp_path / Path(request["source"]).name, tmp_path / "thumbnails"
    source.write_bytes(b"P6\n128 64\n255\n" + bytes(range(256)) * (128 * 64 * 3 // 256))
    request.update(source=str(source), output_dir=str(out))
    control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(task))
    st = wait_phase(control_plane, namespace, name, "Succeeded", timeout=60)
    sizes = request["sizes"]
    assert sizes == [256, 64]
    made = [out / f"{source.stem}-{size}.pnm" for size in sizes]
    assert st["result"] == {"thumbnails": [str(path) for path in made]}
    assert made[0].read_bytes().startswith(b"P6\n128 64\n255\n")  # never enlarged
    assert made[1].read_bytes().startswith(b"P6\n64 32\n255\n")
    assert (st["progress"], st["attempts"]) == (100, 1)
