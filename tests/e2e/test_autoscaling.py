"""The built-in autoscaler on the real control plane and RabbitMQ: a burst of tasks on a
queue nobody serves scales the worker Deployment up within seconds (kube-controller-manager
follows with its ReplicaSet); once a worker drains the queue, the Deployment goes back to
its minimum after the scale-down window (5 s for the shared operator)."""

from __future__ import annotations

import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from kubernetes import client, config

from testbed import ControlPlane, RabbitMQ, wait_until
from testbed._proc import free_port
from tests.e2e.system import Process, system_env, worker_ready

pytestmark = pytest.mark.e2e

WINDOW = 5.0  # ASYNCTASK_SCALE_DOWN_WINDOW_SECONDS of the shared operator
BURST, TARGET, MAX = 5, 2, 3  # 5 messages at 2 per replica: ceil(5 / 2) = 3 replicas


def deployment(name: str, queue: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "labels": {"asynctask.dev/autoscale": "true"},
            "annotations": {
                "asynctask.dev/queues": queue,
                "asynctask.dev/min-replicas": "0",
                "asynctask.dev/max-replicas": str(MAX),
                "asynctask.dev/target-messages-per-replica": str(TARGET),
            },
        },
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "worker", "image": "asynctask-worker:e2e"}]},
            },
        },
    }


def task(ns: str, name: str, queue: str) -> dict[str, Any]:
    return {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncTask",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"queue": queue, "request": {"seconds": 0.2}},
    }


@pytest.fixture
def apps(control_plane: ControlPlane) -> Iterator[client.AppsV1Api]:
    api = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(control_plane.kubeconfig)
    )
    try:
        yield client.AppsV1Api(api)
    finally:
        api.close()


def log_time(line: str) -> datetime:
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


def scale_of(apps: client.AppsV1Api, namespace: str, name: str) -> Callable[[], int]:
    """The Deployment's replicas, as its scale subresource says, when called."""

    def replicas() -> int:
        spec = apps.read_namespaced_deployment_scale(name, namespace).spec
        assert spec is not None
        return int(spec.replicas or 0)

    return replicas


def check_scale_up(
    cp: ControlPlane, operator: Process, apps: client.AppsV1Api, ns: str, name: str, queue: str
) -> None:
    """A burst on a queue no worker serves (the depth stays up) scales the Deployment to
    MAX within 5 s, as the operator's log says; kube-controller-manager follows with a
    ReplicaSet; and it stays there."""
    key, replicas = f"{ns}/{name}", scale_of(apps, ns, name)
    burst = [task(ns, f"burst-{i}", queue) for i in range(BURST)]
    started = time.monotonic()
    cp.kubectl("create", "-f", "-", input="\n".join(json.dumps(t) for t in burst))
    wait_until("the Deployment to scale up", lambda: replicas() == MAX, timeout=15, interval=0.05)
    reaction = time.monotonic() - started
    print(f"\nscale-up reaction from the burst (kubectl create included): {reaction:.2f}s")
    assert reaction <= 5.0
    assert f"scaling {key} from " in operator.text()
    lines = [ln for ln in operator.text().splitlines() if f"scaling {key} from " in ln]
    assert f"to {MAX} replicas: depth " in lines[-1] and "scale up at once" in lines[-1]

    # kube-controller-manager follows: a ReplicaSet with that many replicas.
    def replica_set_scaled() -> bool:
        sets = apps.list_namespaced_replica_set(ns, label_selector=f"app={name}").items
        return any(rs.spec.replicas == MAX for rs in sets)

    wait_until("a ReplicaSet with the new replica count", replica_set_scaled, timeout=30)
    time.sleep(2)
    assert replicas() == MAX  # the depth is still there: no scale-down, no flapping


def drainer_worker(
    cp: ControlPlane, rabbitmq: RabbitMQ, queue: str, tmp_path_factory: pytest.TempPathFactory
) -> Process:
    """A worker of examples/scaling_tasks.py serving ``queue``, started now."""
    env = dict(system_env(cp, rabbitmq), SCALING_QUEUES=queue)
    port = free_port()
    args = ["-m", "asynctask_worker", "scaling_tasks:app", "--concurrency", str(BURST)]
    return Process(
        "scaling-worker",
        [sys.executable, *args, "--metrics-port", str(port)],
        env,
        tmp_path_factory.mktemp("scaling-worker"),
        worker_ready(port),
    )


def operator_holds(operator: Process, key: str) -> Callable[[], bool]:
    return lambda: any(
        f"{key}: depth " in ln and "holding until the scale-down window" in ln
        for ln in operator.text().splitlines()
    )


def check_held_for_the_window(operator: Process, key: str) -> None:
    """The operator's log: the scale-down names the window, and came after a hold of at
    least half the window."""
    log = operator.text().splitlines()
    down = next(
        i
        for i, ln in enumerate(log)
        if re.search(rf"scaling {key} from {MAX} to [0-{MAX - 1}] replicas", ln)
    )
    assert f"the highest count wanted over the last {WINDOW:g}s" in log[down]
    held = [
        ln
        for ln in log[:down]
        if ln.split(": ", 1)[-1].startswith(f"{key}: depth ")
        and "holding until the scale-down window has passed" in ln
    ]
    assert held, "no hold before the scale-down"
    waited = (log_time(log[down]) - log_time(held[-1])).total_seconds()
    print(f"the operator held {waited:.2f}s before scaling down (window {WINDOW:g}s)")
    assert waited >= WINDOW / 2


def test_burst_scales_up_then_back_to_min_after_the_window(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    namespace: str,
    operator: Process,
    apps: client.AppsV1Api,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    queue, name = f"scale-{uuid.uuid4().hex[:6]}", "scaling-workers"
    key = f"{namespace}/{name}"
    control_plane.kubectl(
        "apply", "-n", namespace, "-f", "-", input=json.dumps(deployment(name, queue))
    )
    operator.wait_for_log(
        f"autoscaling {key} on {queue}: 0 to {MAX} replicas, {TARGET} message(s) per replica",
        timeout=30,
    )
    replicas = scale_of(apps, namespace, name)
    assert replicas() == 0
    check_scale_up(control_plane, operator, apps, namespace, name, queue)

    # A worker drains the queue; the Deployment goes back to its minimum after the window.
    drainer = drainer_worker(control_plane, rabbitmq, queue, tmp_path_factory)
    try:
        drainer.wait_ready()
        control_plane.kubectl(
            "wait",
            "-n",
            namespace,
            "--for=jsonpath={.status.phase}=Succeeded",
            "asynctasks",
            "--all",
            "--timeout=60s",
            timeout=70,
        )
        # The operator sees the depth fall (its management figures lag a few seconds) and
        # holds: it wants fewer replicas but keeps them until the window has passed.
        wait_until("the operator to hold", operator_holds(operator, key), timeout=20, interval=0.1)
        assert replicas() == MAX, "scaled down at once: no stabilisation window"
        took = wait_until(
            "the Deployment to scale back to 0", lambda: replicas() == 0, timeout=40, interval=0.1
        )
    finally:
        drainer.stop()
    print(
        f"back to min-replicas {took:.2f}s after the last task succeeded "
        f"(window {WINDOW:g}s, management statistics lag up to 5s)"
    )
    check_held_for_the_window(operator, key)
    time.sleep(1.5)
    assert replicas() == 0  # and it stays there
