"""AsyncQueue on the real control plane, RabbitMQ, operator and worker: the in-flight cap,
the rate limit, pause and resume, priority, fairness between namespaces, and an operator
SIGKILL while tasks are held.

The worker (tests/e2e/queue_app.py) records each run's start and end (its own wall
clock) per queue; each test has queues of its own (AsyncQueue is cluster-scoped: a fresh
name per test) and stops as soon as its claim is proven, deleting what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as k8s_config
from kubernetes.client import Configuration

from asynctask_operator.apiserver.apiclient import ApiClient
from testbed import ControlPlane, RabbitMQ, wait_until
from testbed._proc import free_port
from tests.e2e.system import Process, running, system_env, worker_ready

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

Spans = dict[str, tuple[float, float | None]]  # "ns/name" -> (start, end or None)


# helpers ----------------------------------------------------------------------------------


def fresh_queue(what: str) -> str:
    return f"qe-{what}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def queue_worker(
    cp: ControlPlane, rmq: RabbitMQ, queues: list[str], concurrency: int, spans: Path
) -> Iterator[Process]:
    port = free_port()
    env = dict(system_env(cp, rmq), QUEUE_E2E_QUEUES=",".join(queues), QUEUE_E2E_SPANS=str(spans))
    args = [sys.executable, "-m", "asynctask_worker", "tests.e2e.queue_app:app"]
    args += ["--concurrency", str(concurrency), "--queues", ",".join(queues)]
    args += ["--metrics-port", str(port)]
    with running("queue-worker", args, env, spans, ready=worker_ready(port)) as proc:
        yield proc


@contextlib.contextmanager
def async_queue(cp: ControlPlane, name: str, spec: dict[str, Any]) -> Iterator[str]:
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncQueue",
        "metadata": {"name": name},
        "spec": spec,
    }
    cp.kubectl("create", "-f", "-", input=json.dumps(manifest))
    try:
        yield name
    finally:
        cp.kubectl("delete", "asyncqueue", name, "--wait=false", check=False)


def patch_queue(cp: ControlPlane, name: str, spec: dict[str, Any]) -> float:
    """Patch the AsyncQueue's spec; the time the apiserver had it (the call returned)."""
    body = json.dumps({"spec": spec})
    cp.kubectl("patch", "asyncqueue", name, "--type=merge", "-p", body)
    return time.time()


def queue_status(cp: ControlPlane, name: str) -> dict[str, Any]:
    obj = json.loads(cp.kubectl("get", "asyncqueue", name, "-o", "json").stdout)
    return dict(obj.get("status") or {})


def create_many(cp: ControlPlane, ns: str, items: list[tuple[str, dict[str, Any]]]) -> float:
    """Create the tasks (name, spec) in order, 8 at a time; the time the last was created."""
    cfg = Configuration()
    k8s_config.load_kube_config(config_file=str(cp.kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]

    async def run() -> None:
        client = ApiClient(cfg, connections=8)
        sem = asyncio.Semaphore(8)

        async def one(name: str, spec: dict[str, Any]) -> None:
            body = {
                "apiVersion": "asynctask.dev/v1alpha1",
                "kind": "AsyncTask",
                "metadata": {"name": name, "namespace": ns},
                "spec": spec,
            }
            async with sem:
                await client.request(
                    "POST", f"/apis/asynctask.dev/v1alpha1/namespaces/{ns}/asynctasks", body=body
                )

        try:
            await asyncio.gather(*(one(name, spec) for name, spec in items))
        finally:
            await client.close()

    asyncio.run(run())
    return time.time()


def tasks(cp: ControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    out = cp.kubectl("get", "asynctasks", "-n", ns, "-o", "json", timeout=120).stdout
    return {obj["metadata"]["name"]: obj for obj in json.loads(out)["items"]}


def read_spans(folder: Path, queue: str) -> Spans:
    path = folder / f"{queue}.log"
    found: dict[str, list[float | None]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        what, at, who = line.split()
        entry = found.setdefault(who, [None, None])
        entry[0 if what == "start" else 1] = float(at)
    return {who: (float(s), e) for who, (s, e) in found.items() if s is not None}


def most_at_once(spans: Spans) -> int:
    """The most runs that overlapped at any moment."""
    edges = sorted(
        [(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values() if e],
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def delete_rest(cp: ControlPlane, ns: str) -> None:
    """The claim is proven: delete what is left of the namespace's tasks, in one call."""
    cp.kubectl("delete", "asynctasks", "--all", "-n", ns, "--wait=false", timeout=120)


def started(spans_dir: Path, queue: str, count: int) -> bool:
    return len(read_spans(spans_dir, queue)) >= count


# the in-flight cap ------------------------------------------------------------------------


def test_the_in_flight_cap_is_never_exceeded(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, tmp_path: Path
) -> None:
    """Cap 5, 200 tasks of 50 ms on a worker that could run 10 at once: at most 5 ever
    overlap, and 5 did (the cap, not the worker, is what bounds them)."""
    queue = fresh_queue("cap")
    with (
        async_queue(control_plane, queue, {"maxInFlight": 5}),
        queue_worker(control_plane, rabbitmq, [queue], 10, tmp_path),
    ):
        names = [f"c-{i:03d}" for i in range(200)]
        create_many(control_plane, namespace, [(n, {"queue": queue}) for n in names])
        wait_until(
            "all 200 ran",
            lambda: sum(1 for _, e in read_spans(tmp_path, queue).values() if e) == 200,
            120,
        )
        spans = read_spans(tmp_path, queue)
        assert len(spans) == 200  # each once
        assert most_at_once(spans) == 5, most_at_once(spans)
        objs = tasks(control_plane, namespace)
        held = [n for n, o in objs.items() if "reason" in (o.get("status") or {})]
        assert not held  # published tasks carry no held reason
        st = queue_status(control_plane, queue)
        assert st.get("inFlight", 0) <= 5
