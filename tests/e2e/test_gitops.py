"""What Flux (kstatus) and Argo CD say about a task at each moment of its life, computed by
the tools' own code (tests/gitops.py: cli-utils' status.Compute, the health.lua in
gopher-lua) over the objects as the real apiserver returns them.

docs/deploying.md has the same moments as a table; the expectations here are that table.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import ControlPlane, RabbitMQ, probes, wait_until
from testbed._proc import free_port
from tests import gitops
from tests.e2e.system import Process, operator_ready, running, system_env
from tests.e2e.tasks import create, get, patch_spec, wait_phase

pytestmark = pytest.mark.e2e

#: A queue no worker serves: a task there stays Pending.
UNSERVED = "gitops-nobody-serves-this"


def verdicts(obj: dict[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """(kstatus, Argo CD health) for one object read back from the apiserver."""
    return gitops.kstatus(obj)[0], gitops.argocd(obj)[0]


def shown(obj: dict[str, Any]) -> tuple[str, str, str, str]:
    """kstatus's and Argo CD's status and message, for printing and comparing."""
    k, a = verdicts(obj)
    return k["status"], k["message"], a["status"], a["message"]


@pytest.fixture
def unwatched(control_plane: ControlPlane, rabbitmq: RabbitMQ) -> Iterator[tuple[str, str]]:
    """A namespace the shared operator does not watch (it serves t-* only) and a RabbitMQ
    virtual host of its own: (namespace, AMQP URL) for an operator the test starts and
    stops itself."""
    ns = f"g-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", ns)
    url = rabbitmq.add_vhost(ns)
    yield ns, url
    control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    rabbitmq.delete_vhost(ns)


def check_created_without_operator(cp: ControlPlane, ns: str, name: str) -> None:
    """Create the task with no operator watching: the apiserver's status default alone,
    and kubectl shows what it showed before (no phase, no progress, no condition)."""
    create(cp, ns, name, queue=UNSERVED)
    obj = get(cp, ns, name)
    print(f"\njust created, no operator: status={obj.get('status')} -> {shown(obj)}")
    assert shown(obj) == (
        "InProgress",
        "AsyncTask generation is 1, but latest observed generation is 0",
        "Progressing",
        "Waiting for the AsyncTask operator to queue the task",
    )
    assert obj["status"] == {"observedGeneration": 0}  # no phase: never queued
    row = cp.kubectl("get", "asynctask", name, "-n", ns, "--no-headers").stdout.split()
    assert row[:2] == [name, UNSERVED] and len(row) == 3, row
    waited = cp.kubectl(
        "wait",
        "-n",
        ns,
        "--for=condition=Completed",
        f"asynctask/{name}",
        "--timeout=1s",
        check=False,
    )
    assert waited.returncode != 0 and "timed out" in waited.stderr


def run_operator_until(
    cp: ControlPlane, env: dict[str, str], logdir: Path, run: str, ns: str, task: str, phase: str
) -> None:
    """Run an operator (process ``run``) of the namespace ``ns`` until its task ``task`` is
    in ``phase``, then stop it."""
    live = free_port()
    operator = [sys.executable, "-m", "asynctask_operator", "--standalone", "--namespace", ns]
    operator += ["--liveness", probes.liveness_url(live)]
    with running(run, operator, env, logdir, ready=operator_ready(live)):
        wait_phase(cp, ns, task, phase)


def test_before_the_operator_and_while_it_is_down(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, unwatched: tuple[str, str], tmp_path: Path
) -> None:
    ns, url = unwatched
    cp = control_plane
    env = dict(system_env(cp, rabbitmq), ASYNCTASK_AMQP_URL=url)
    check_created_without_operator(cp, ns, "early")

    # The operator starts and queues it: Pending.
    run_operator_until(cp, env, tmp_path, "gitops-operator", ns, "early", "Pending")
    obj = get(cp, ns, "early")
    print(f"Pending: {shown(obj)}")
    assert shown(obj)[0::2] == ("InProgress", "Progressing")
    assert shown(obj)[3].startswith("Pending: ")

    # Cancel requested while the operator is down: not observed yet.
    patch_spec(cp, ns, "early", {"cancel": True})
    obj = get(cp, ns, "early")
    print(f"cancel requested, not observed: {shown(obj)}")
    assert (obj["metadata"]["generation"], obj["status"]["observedGeneration"]) == (2, 1)
    assert shown(obj) == (
        "InProgress",
        "AsyncTask generation is 2, but latest observed generation is 1",
        "Progressing",
        "Waiting for the AsyncTask operator to observe generation 2",
    )

    # The operator is back and observes it: Cancelled, which both tools call a failure.
    run_operator_until(cp, env, tmp_path, "gitops-operator-again", ns, "early", "Cancelled")
    obj = get(cp, ns, "early")
    print(f"Cancelled while Pending: {shown(obj)}")
    assert shown(obj)[0::2] == ("Failed", "Degraded")
    assert shown(obj)[3].startswith("Cancelled (CancelRequested): ")

    # The status default costs no write: the operator's two writes are all there are.
    writes = [(w["verb"], w["subresource"]) for w in cp.writes(ns) if w["resource"] == "asynctasks"]
    assert writes == [
        ("create", None),
        ("patch", "status"),
        ("patch", None),
        ("patch", "status"),
    ], writes


@pytest.mark.usefixtures("operator", "lifecycle_worker")
def test_each_moment_of_tasks_run_by_the_operator(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp, ns = control_plane, namespace
    create(cp, ns, "queued", queue=UNSERVED)
    create(cp, ns, "running", queue="ticking", request={"seconds": 120})
    create(cp, ns, "cancelled", queue="sleepy", request={"seconds": 120})
    create(cp, ns, "succeeded", queue="burst", request={})
    create(cp, ns, "failed", queue="refuses", request={})
    create(cp, ns, "error", queue="flaky", request={})
    create(cp, ns, "timedout", queue="sleepy", request={"seconds": 120}, timeoutSeconds=2)

    wait_phase(cp, ns, "queued", "Pending")
    wait_phase(cp, ns, "running", "Processing")
    seen = {"Pending": get(cp, ns, "queued"), "Processing": get(cp, ns, "running")}
    wait_phase(cp, ns, "cancelled", "Processing")
    patch_spec(cp, ns, "cancelled", {"cancel": True})
    for name, phase in [
        ("cancelled", "Cancelled"),
        ("succeeded", "Succeeded"),
        ("failed", "Failed"),
        ("error", "Error"),
        ("timedout", "TimedOut"),
    ]:
        wait_phase(cp, ns, name, phase)
        seen[phase] = get(cp, ns, name)

    expected = {
        "Pending": ("InProgress", "Progressing"),
        "Processing": ("InProgress", "Progressing"),
        "Succeeded": ("Current", "Healthy"),
        "Failed": ("Failed", "Degraded"),
        "Error": ("Failed", "Degraded"),
        "TimedOut": ("Failed", "Degraded"),
        "Cancelled": ("Failed", "Degraded"),
    }
    phases = list(expected)
    k = gitops.kstatus(*(seen[p] for p in phases))
    a = gitops.argocd(*(seen[p] for p in phases))
    got = {p: (kv["status"], av["status"]) for p, kv, av in zip(phases, k, a, strict=True)}
    for p, kv, av in zip(phases, k, a, strict=True):
        print(
            f"\n{p:10} kstatus {kv['status']:10} {kv['message']!r:60.60} "
            f"Argo CD {av['status']:11} {av['message']!r:.60}"
        )
    assert got == expected
    assert k[phases.index("Succeeded")]["message"] == "Resource is Ready"
    assert a[phases.index("Processing")]["message"].startswith("Processing (")
    assert a[phases.index("Failed")]["message"].startswith("Failed (Refused): ")


SCHEDULE_CHECK = (
    Path(__file__).resolve().parents[2]
    / "deploy"
    / "argocd"
    / "asynctask.dev"
    / "AsyncTaskSchedule"
    / "health.lua"
)


def test_schedules_as_the_tools_see_them(
    control_plane: ControlPlane, namespace: str, operator: Process
) -> None:
    """AsyncTaskSchedules as the real apiserver returns them, served by the shared operator:
    a served one is Current and Healthy, an unknown time zone Failed and Degraded."""
    cp = control_plane

    def make(name: str, **spec: Any) -> None:
        manifest = {
            "apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTaskSchedule",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {**spec, "template": {"spec": {"queue": UNSERVED}}},
        }  # fmt: skip
        cp.kubectl("create", "-f", "-", input=json.dumps(manifest))

    def read(name: str) -> dict[str, Any]:
        out = cp.kubectl("get", "asynctaskschedule", name, "-n", namespace, "-o", "json").stdout
        obj: dict[str, Any] = json.loads(out)
        return obj

    make("hourly", schedule="@hourly")
    make("mars", schedule="@hourly", timeZone="Mars/Olympus_Mons")
    wait_until(
        "both observed",
        lambda: all(read(n)["status"]["observedGeneration"] for n in ("hourly", "mars")),
        30,
    )
    ok, bad = read("hourly"), read("mars")
    assert [v["status"] for v in gitops.kstatus(ok, bad)] == ["Current", "Failed"]
    argo = gitops.argocd(ok, bad, script=SCHEDULE_CHECK)
    assert argo[0]["status"] == "Healthy" and argo[0]["message"].startswith("Next run at ")
    assert argo[1] == {
        "status": "Degraded",
        "message": "InvalidTimeZone: unknown time zone 'Mars/Olympus_Mons'",
    }


QUEUE_HEALTH = (
    Path(__file__).resolve().parents[2] / "deploy/argocd/asynctask.dev/AsyncQueue/health.lua"
)


@pytest.mark.usefixtures("operator")
def test_an_asyncqueue_reads_as_current_and_healthy_then_suspended_when_paused(
    control_plane: ControlPlane,
) -> None:
    """The shared operator applies an AsyncQueue's policy and says so in its status: kstatus
    (Flux) computes Current, Argo CD Healthy; paused, Argo CD says Suspended and kstatus
    still Current (paused is what the manifest asks for)."""
    name = f"gitops-q-{uuid.uuid4().hex[:6]}"
    manifest = (
        f"apiVersion: asynctask.dev/v1alpha1\nkind: AsyncQueue\nmetadata:\n  name: {name}\n"
        "spec:\n  maxInFlight: 3\n"
    )
    control_plane.kubectl("apply", "-f", "-", input=manifest)

    def read() -> dict[str, Any]:
        out = control_plane.kubectl("get", "asyncqueue", name, "-o", "json").stdout
        obj: dict[str, Any] = json.loads(out)
        return obj

    def observed() -> bool:
        obj = read()
        return bool(obj["status"].get("observedGeneration") == obj["metadata"]["generation"])

    try:
        wait_until("the operator to apply the policy", observed, 30)
        obj = read()
        verdict = gitops.kstatus(obj)[0], gitops.argocd(obj, script=QUEUE_HEALTH)[0]
        print(f"\napplied: {verdict}")
        assert verdict == (
            {"status": "Current", "message": "Resource is Ready"},
            {"status": "Healthy", "message": "0 in flight, 0 held"},
        )
        control_plane.kubectl(
            "patch", "asyncqueue", name, "--type=merge", "-p", '{"spec":{"paused":true}}'
        )
        wait_until("the operator to apply the pause", observed, 30)
        obj = read()
        verdict = gitops.kstatus(obj)[0], gitops.argocd(obj, script=QUEUE_HEALTH)[0]
        print(f"paused: {verdict}")
        assert verdict[0]["status"] == "Current"
        assert verdict[1] == {"status": "Suspended", "message": "Paused: 0 in flight, 0 held"}
        conditions = {c["type"]: c["status"] for c in obj["status"]["conditions"]}
        assert conditions == {"Paused": "True", "Saturated": "False", "Ready": "True"}
    finally:
        control_plane.kubectl("delete", "asyncqueue", name, "--wait=false", check=False)
