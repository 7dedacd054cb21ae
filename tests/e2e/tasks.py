"""Helpers for e2e tests: create AsyncTasks, wait for phases, read status, and read the
shared operator's metrics."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any

import pika
from prometheus_client.parser import text_string_to_metric_families

from asynctask_worker import topology
from testbed import ControlPlane, RabbitMQ, wait_until

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
#: The operator's count of worker status messages, by what became of them (``result``).
STATUS_MESSAGES = "asynctask_operator_status_messages_total"


def create(cp: ControlPlane, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncTask",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
    out = cp.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(manifest)).stdout
    created: dict[str, Any] = json.loads(out)
    return created


def get(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(
        cp.kubectl("get", "asynctask", name, "-n", ns, "-o", "json").stdout
    )
    return obj


def status(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    return dict(get(cp, ns, name).get("status") or {})


def wait_phase(
    cp: ControlPlane, ns: str, name: str, phase: str, timeout: float = 60
) -> dict[str, Any]:
    cp.kubectl(
        "wait",
        "-n",
        ns,
        f"--for=jsonpath={{.status.phase}}={phase}",
        f"asynctask/{name}",
        f"--timeout={int(timeout)}s",
        timeout=timeout + 10,
    )
    return status(cp, ns, name)


def patch_spec(
    cp: ControlPlane, ns: str, name: str, spec: dict[str, Any], check: bool = True
) -> Any:
    return cp.kubectl(
        "patch",
        "asynctask",
        name,
        "-n",
        ns,
        "--type=merge",
        "-p",
        json.dumps({"spec": spec}),
        check=check,
    )


def ready_messages(rabbitmq: RabbitMQ, queue: str) -> int:
    """Messages ready for delivery in a task queue (a passive declare: exact, at once);
    0 while the operator has not declared the queue yet."""
    conn = pika.BlockingConnection(pika.URLParameters(rabbitmq.url))
    try:
        ok = conn.channel().queue_declare(topology.task_queue_name(queue), passive=True)
        return int(ok.method.message_count)
    except pika.exceptions.ChannelClosedByBroker:
        return 0
    finally:
        conn.close()


def scrape(operator_env: Mapping[str, str]) -> Samples:
    """The samples an operator (started with ASYNCTASK_METRICS_PORT) serves."""
    port = operator_env["ASYNCTASK_METRICS_PORT"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


class Counted:
    """What an operator's counters counted since this was made: ``counted.wait(n, name,
    **labels)`` waits until a counter rose by at least ``n`` (e.g. the status messages the
    operator ignored), so a test knows its messages were handled, not merely sent."""

    def __init__(self, operator_env: Mapping[str, str]) -> None:
        self.env, self.before = operator_env, scrape(operator_env)

    def delta(self, name: str, **labels: str) -> float:
        return sample(scrape(self.env), name, **labels) - sample(self.before, name, **labels)

    def wait(self, n: float, name: str, timeout: float = 15, **labels: str) -> None:
        wait_until(
            f"{name}{labels} to rise by {n}", lambda: self.delta(name, **labels) >= n, timeout
        )
