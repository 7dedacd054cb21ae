"""The first vertical slice, on the real control plane and RabbitMQ: apply → Succeeded."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed import ControlPlane, wait_until
from tests.e2e.system import Process

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def status(cp: ControlPlane, ns: str, name: str) -> dict[str, object]:
    out = cp.kubectl("get", "asynctask", name, "-n", ns, "-o", "json").stdout
    return dict(json.loads(out).get("status") or {})


def test_example_task_succeeds(
    control_plane: ControlPlane, namespace: str, operator: Process, worker: Process
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "hello.yaml"))
    control_plane.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=jsonpath={.status.phase}=Succeeded",
        "asynctask/hello",
        "--timeout=60s",
    )
    st = status(control_plane, namespace, "hello")
    assert st["result"] == {"greeting": "Hello, AsyncTask!", "steps": 5}
    assert st["progress"] == 100
    assert st["attempts"] == 1
    assert st["observedGeneration"] == 1
    conditions = {c["type"]: c["status"] for c in st["conditions"]}  # type: ignore[attr-defined]
    assert conditions == {
        "Ready": "True",
        "Completed": "True",
        "Reconciling": "False",
        "Stalled": "False",
    }
    # kubectl wait on the shared terminal condition works too.
    control_plane.kubectl(
        "wait", "-n", namespace, "--for=condition=Completed", "asynctask/hello", "--timeout=5s"
    )


@contextlib.contextmanager
def verbose_watch(cp: ControlPlane, namespace: str, out: Path, requests: Path) -> Iterator[None]:
    """A ``kubectl get asynctasks -w`` of the namespace, its rows in ``out`` and each
    request it makes in ``requests`` (``-v=6``); ended on leaving."""
    assert cp.bin_dir is not None
    with out.open("w") as sink, requests.open("w") as log:
        watch = subprocess.Popen(
            [str(cp.bin_dir / "kubectl"), "get", "asynctasks", "-n", namespace, "-w", "-v=6"],
            env=cp.env(),
            stdout=sink,
            stderr=log,
            text=True,
        )
    try:
        yield
    finally:
        watch.terminate()
        watch.wait(10)


def any_line(path: Path, matches: Callable[[str], bool]) -> Callable[[], bool]:
    return lambda: any(matches(line) for line in path.read_text().splitlines())


def test_watch_shows_pending_processing_succeeded(
    control_plane: ControlPlane, namespace: str, operator: Process, worker: Process, tmp_path: Path
) -> None:
    out, requests = tmp_path / "watch.out", tmp_path / "watch.requests"
    with verbose_watch(control_plane, namespace, out, requests):
        # The watch runs (the apiserver accepted it) before the object exists.
        wait_until(
            "the watch to start",
            any_line(requests, lambda line: "watch=true" in line and "200 OK" in line),
            30,
        )
        control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "hello.yaml"))
        control_plane.kubectl(
            "wait",
            "-n",
            namespace,
            "--for=jsonpath={.status.phase}=Succeeded",
            "asynctask/hello",
            "--timeout=60s",
        )
        wait_until(
            "the last row to reach the watch",
            any_line(out, lambda line: line.split()[:3] == ["hello", "hello", "Succeeded"]),
            15,
        )
    output = out.read_text()
    rows = [line.split() for line in output.splitlines()[1:] if line.strip()]
    phases = [r[2] for r in rows if len(r) >= 5 and r[0] == "hello"]
    header = output.splitlines()[0].split()
    assert header == ["NAME", "QUEUE", "PHASE", "PROGRESS", "AGE"], output
    # Each phase appears, in order, as rows of the watch (progress rows in between).
    firsts = [phases.index(p) for p in ("Pending", "Processing", "Succeeded")]
    assert firsts == sorted(firsts), output
    assert phases[-1] == "Succeeded", output
    progress = [int(r[3]) for r in rows if len(r) >= 5 and r[2] == "Processing"]
    assert progress == sorted(progress), output


def test_handler_exception_ends_in_error(
    control_plane: ControlPlane, namespace: str, operator: Process, worker: Process
) -> None:
    control_plane.kubectl("apply", "-n", namespace, "-f", str(EXAMPLES / "failing.yaml"))
    control_plane.kubectl(
        "wait",
        "-n",
        namespace,
        "--for=jsonpath={.status.phase}=Error",
        "asynctask/always-fails",
        "--timeout=60s",
    )
    st = status(control_plane, namespace, "always-fails")
    error = st["error"]
    assert isinstance(error, dict)
    assert error["reason"] == "HandlerException"
    assert "RuntimeError: this handler always raises" in error["message"]
    assert "Traceback" in error["traceback"]
    conditions = {c["type"]: c["status"] for c in st["conditions"]}  # type: ignore[attr-defined]
    assert conditions["Completed"] == "True"
    assert conditions["Stalled"] == "True"
    assert conditions["Ready"] == "False"
