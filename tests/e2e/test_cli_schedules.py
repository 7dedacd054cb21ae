"""``asynctask schedule …`` and ``asynctask queue …`` as a script uses them, through both
transports (the Kubernetes API with the ``writer`` caller's kubeconfig, and the gateway with
its token): create from a manifest, list, get, suspend, resume, trigger, delete; list, get,
pause, resume a queue; ``-o json``; a refusal's exit code.

The schedule's cron is 1 January's midnight, so no operator fires it during the test; its
status is the operator's to write and is not looked at here (test_gateway_schedules.py
reads a status through the gateway). The queue is this test's own AsyncQueue.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import ControlPlane
from tests.e2e.gateway_client import Gateway, grant_queues
from tests.e2e.test_cli import cli_env, run

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures", "tests.e2e.client_fixtures"]


@pytest.fixture(params=["kubernetes", "gateway"])
def env(
    request: pytest.FixtureRequest, gateway: Gateway, writer_kubeconfig: Path
) -> dict[str, str]:
    """The ``writer`` caller's CLI environment, for one transport."""
    if request.param == "kubernetes":
        return cli_env(writer_kubeconfig)
    return cli_env(
        writer_kubeconfig,
        ASYNCTASK_GATEWAY=gateway.url,
        ASYNCTASK_TOKEN=gateway.tokens["writer"],
    )


@pytest.fixture
def queue(control_plane: ControlPlane, gateway: Gateway) -> Iterator[str]:
    name = f"clq-{uuid.uuid4().hex[:6]}"
    manifest: dict[str, Any] = {"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncQueue"}
    manifest |= {"metadata": {"name": name}, "spec": {"maxInFlight": 3}}
    control_plane.kubectl("create", "-f", "-", input=json.dumps(manifest))
    with grant_queues(control_plane, gateway.namespace, "writer", ["get", "list", "patch"]):
        yield name
    control_plane.kubectl("delete", "asyncqueue", name, "--wait=false", check=False)


def test_a_schedule_from_a_manifest_through_the_cli(
    control_plane: ControlPlane, gateway: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    cp, ns, name = control_plane, gateway.namespace, f"cli-{uuid.uuid4().hex[:6]}"
    manifest = tmp_path / "schedule.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "asynctask.dev/v1alpha1",
                "kind": "AsyncTaskSchedule",
                "metadata": {"name": name, "labels": {"team": "cli"}},
                "spec": {
                    "schedule": "0 0 1 1 *",
                    "timeZone": "Europe/Berlin",
                    "template": {"spec": {"queue": "cl-none", "request": {"n": 1}}},
                },
            }
        )
    )
    n = ["-n", ns]
    assert run(env, "schedule", "create", "-f", str(manifest), *n).stdout.strip() == (
        f"asynctaskschedule/{name} created"
    )
    listed = run(env, "schedule", "list", *n)
    assert listed.returncode == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE"]
    row = next(r for r in rows if r.startswith(name))
    assert "0 0 1 1 * (Europe/Berlin)" in row and " false " in row
    got = json.loads(run(env, "schedule", "get", name, "-o", "json", *n).stdout)
    assert (got["schedule"], got["timeZone"], got["queue"]) == (
        "0 0 1 1 *",
        "Europe/Berlin",
        "cl-none",
    )
    assert run(env, "schedule", "suspend", name, *n).stdout.strip() == (
        f"asynctaskschedule/{name} suspended"
    )
    spec = json.loads(cp.kubectl("get", "asynctaskschedule", name, "-n", ns, "-o", "json").stdout)
    assert spec["spec"]["suspend"] is True
    assert (
        json.loads(run(env, "schedule", "resume", name, "-o", "json", *n).stdout)["suspend"]
        is False
    )
    task = json.loads(run(env, "schedule", "trigger", name, "-o", "json", *n).stdout)
    assert task["name"].startswith(f"{name}-manual-") and task["queue"] == "cl-none"
    mine = run(env, "list", "-l", f"asynctask.dev/schedule={name}", "-o", "json", *n)
    assert [t["name"] for t in json.loads(mine.stdout)["items"]] == [task["name"]]
    assert run(env, "schedule", "delete", name, *n).returncode == 0
    missing = run(env, "schedule", "get", name, *n)
    assert missing.returncode == 3 and "NotFound" in missing.stderr


def test_a_bad_manifest_is_a_usage_error_and_a_refusal_exits_3(
    gateway: Gateway, env: dict[str, str], tmp_path: Path
) -> None:
    wrong = tmp_path / "task.yaml"
    wrong.write_text(yaml.safe_dump({"kind": "AsyncTask", "metadata": {"name": "x"}}))
    done = run(env, "schedule", "create", "-f", str(wrong), "-n", gateway.namespace)
    assert done.returncode == 2 and "AsyncTaskSchedule" in done.stderr
    both = tmp_path / "both.yaml"
    both.write_text(
        yaml.safe_dump(
            {
                "kind": "AsyncTaskSchedule",
                "apiVersion": "asynctask.dev/v1alpha1",
                "metadata": {"name": "both"},
                "spec": {
                    "schedule": "* * * * *",
                    "intervalSeconds": 5,
                    "template": {"spec": {"queue": "q"}},
                },
            }
        )
    )
    refused = run(env, "schedule", "create", "-f", str(both), "-n", gateway.namespace)
    assert refused.returncode == 3 and "exactly one of" in refused.stderr


def test_a_queue_through_the_cli(
    control_plane: ControlPlane, gateway: Gateway, env: dict[str, str], queue: str
) -> None:
    listed = run(env, "queue", "list")
    assert listed.returncode == 0 and listed.stdout.split()[:3] == ["NAME", "PAUSED", "HELD"]
    assert any(line.startswith(queue) for line in listed.stdout.splitlines())
    got = json.loads(run(env, "queue", "get", queue, "-o", "json").stdout)
    assert got["name"] == queue and got["maxInFlight"] == 3 and got["paused"] is False
    assert run(env, "queue", "pause", queue).stdout.strip() == f"asyncqueue/{queue} paused"
    spec = json.loads(control_plane.kubectl("get", "asyncqueue", queue, "-o", "json").stdout)
    assert spec["spec"]["paused"] is True
    assert "Paused:         true" in run(env, "queue", "get", queue).stdout
    assert run(env, "queue", "resume", queue).stdout.strip() == f"asyncqueue/{queue} resumed"
    spec = json.loads(control_plane.kubectl("get", "asyncqueue", queue, "-o", "json").stdout)
    assert spec["spec"]["paused"] is False


def test_submit_priority_reaches_the_task(env: dict[str, str], gateway: Gateway) -> None:
    n = ["-n", gateway.namespace]
    task = json.loads(run(env, "submit", "cl-none", "--priority", "7", "-o", "json", *n).stdout)
    assert task["priority"] == 7
    assert run(env, "delete", task["name"], *n).returncode == 0
    refused = run(env, "submit", "cl-none", "--priority", "101", *n)
    assert refused.returncode == 3 and "priority" in refused.stderr
