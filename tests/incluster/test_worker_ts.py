"""A TypeScript worker pool beside the Python one (issue 25): the chart runs the example
TypeScript worker (``worker-ts/examples/Dockerfile``'s image) as a second worker pool for the
queue ``resize``, beside the Python example pool of ``hello``. A backlog on each queue is
served by its own pool, and the operator's autoscaler raises both from zero and brings both
back to zero the same way: the TypeScript pool carries the same chart values and annotations.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed.images import import_all
from testbed.ts_image import node_base_image, ts_worker_image
from tests.incluster.conftest import (
    EXISTING_CLUSTER,
    NAMESPACE,
    POOL_AUTOSCALING,
    POOL_DEPLOYMENT,
    RELEASE,
    SCALE_DOWN_WINDOW_SECONDS,
    WORKER_GRACE_SECONDS,
    InCluster,
    chart_values,
)

TS_POOL = "ts"
TS_DEPLOYMENT = "asynctask-worker-ts"
TERMINAL = {"Succeeded", "Failed", "Error", "TimedOut", "Cancelled"}
#: Each queue's backlog: with 2 messages a replica, enough for the autoscaler to act.
BURST = 4


def _ts_image(incluster: InCluster) -> str:
    """The example TypeScript worker's image (built from its Dockerfile, cached), imported
    into the node's containerd; on kind, the one ``hack/kind-e2e.sh`` loaded."""
    if EXISTING_CLUSTER:
        return os.environ["ASYNCTASK_INCLUSTER_TS_IMAGE"]
    assert incluster.containerd is not None
    image = ts_worker_image(node_base_image())
    import_all([image], incluster.containerd)
    return image.tag


def _ts_pool(image: str) -> dict[str, Any]:
    repository, _, tag = image.rpartition(":")
    return {
        "name": TS_POOL,
        "image": {"repository": repository, "tag": tag},
        "command": ["node"],
        "args": ["dist/examples/resize.js"],
        "queues": ["resize"],
        "gracePeriodSeconds": WORKER_GRACE_SECONDS,
        "autoscaling": dict(POOL_AUTOSCALING),  # the Python pool's
    }


def _upgrade(incluster: InCluster, workdir: Path, values: dict[str, Any]) -> None:
    path = workdir / "values.json"
    path.write_text(json.dumps(values))
    incluster.helm(
        "upgrade", RELEASE, str(incluster.chart), "--namespace", NAMESPACE, "-f", str(path)
    )


@pytest.fixture
def ts_pool(incluster: InCluster, tmp_path: Path) -> Iterator[str]:
    """The release upgraded with the TypeScript pool; the tests' values again afterwards."""
    _upgrade(incluster, tmp_path, chart_values(incluster.image, _ts_pool(_ts_image(incluster))))
    try:
        yield TS_DEPLOYMENT
    finally:
        _upgrade(incluster, tmp_path, chart_values(incluster.image))


def _replicas(incluster: InCluster, deployment: str) -> int:
    return int(incluster.get("deployment", deployment)["spec"].get("replicas", 0))


def _pool_pods(incluster: InCluster, pool: str) -> list[dict[str, Any]]:
    return [
        p for p in incluster.pods("worker") if p["metadata"]["labels"]["asynctask.dev/pool"] == pool
    ]


def test_a_typescript_pool_serves_its_queue_and_autoscales_like_the_python_one(
    incluster: InCluster, ts_pool: str
) -> None:
    pools = {"resize": (ts_pool, TS_POOL), "hello": (POOL_DEPLOYMENT, "example")}
    # The new Deployment starts with one replica (it has no replicas field: the autoscaler
    # owns it) and the autoscaler takes it down after its window; the Python pool is idle.
    for deployment, pool in pools.values():
        incluster.wait_for(
            f"{deployment} at zero replicas", lambda d=deployment: _replicas(incluster, d) == 0, 120
        )
        incluster.wait_for(f"no {pool} pods", lambda p=pool: not _pool_pods(incluster, p), 120)
    names = {queue: [f"{queue}-{i}" for i in range(BURST)] for queue in pools}
    for i in range(BURST):
        incluster.submit(f"resize-{i}", "resize", {"url": f"img-{i}.jpg", "width": 64})
        incluster.submit(f"hello-{i}", "hello", {"steps": 3, "step_seconds": 1.0})
    for deployment, _ in pools.values():
        peak = incluster.wait_for(
            f"the autoscaler to raise {deployment}",
            lambda d=deployment: _replicas(incluster, d),
            120,
        )
        assert peak >= 1
    for queue, (deployment, _) in pools.items():
        for name in names[queue]:
            status = incluster.wait_phase(name, TERMINAL, timeout=240)["status"]
            assert status["phase"] == "Succeeded", (name, status)
            # Each task ran in a pod of its own queue's pool (the worker id starts with the
            # pod name, the Deployment's name + hashes).
            assert status["worker"].startswith(deployment + "-"), (name, status["worker"])
    result = incluster.task("resize-0")["status"]["result"]
    assert result == {"thumbnail": "img-0-64.png"}, result
    for deployment, _ in pools.values():
        incluster.wait_for(
            f"{deployment} back at zero",
            lambda d=deployment: _replicas(incluster, d) == 0,
            120 + SCALE_DOWN_WINDOW_SECONDS,
        )
