"""Is a component ready? Asked of its health probe or its metrics, never of its log.

Log wording is for people and may change; a probe or a metric is an interface:

* the operator serves kopf's liveness endpoint (``--liveness URL``), which reports its
  probes as JSON; the ``broker`` probe is true while it is connected to RabbitMQ (or
  stands by), the ``leader`` probe says whether it leads (``--peering``);
* a worker serves ``asynctask_worker_ready`` on its metrics port: 1 while it consumes its
  task queues (after catching up with the control stream).

Each check answers False while the component cannot answer yet (not listening, no sample):
wait on it with :func:`testbed._proc.wait_until`.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

_UNREACHABLE = (urllib.error.URLError, ConnectionError, TimeoutError, ValueError)


def liveness_url(port: int) -> str:
    """The operator's ``--liveness`` URL for a local port."""
    return f"http://127.0.0.1:{port}/healthz"


def metrics_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"


def _operator_probes(url: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            probes = json.loads(resp.read() or b"{}")
    except _UNREACHABLE:
        return {}
    return probes if isinstance(probes, dict) else {}


def operator_connected(url: str) -> bool:
    """The operator's ``broker`` probe says it is connected to RabbitMQ (a standby's says
    True: it is healthy, and connects to nothing until it is elected)."""
    return _operator_probes(url).get("broker") is True


def operator_role(url: str) -> object:
    """The operator's ``leader`` probe: ``leading``, ``standby`` or ``standalone`` (None:
    no answer yet). kopf serves probes computed up to 10 s earlier."""
    return _operator_probes(url).get("leader")


def metric(url: str, name: str, **labels: str) -> float | None:
    """One sample's value from a metrics endpoint; None if absent or not served yet."""
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            text = resp.read().decode()
    except _UNREACHABLE:
        return None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def worker_ready(url: str) -> bool:
    """A worker's readiness gauge is 1: it consumes its task queues."""
    return metric(url, "asynctask_worker_ready") == 1
