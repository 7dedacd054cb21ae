"""Chaos fixtures: the 3-node RabbitMQ cluster (session) and one scenario's system.

The suite needs the local control plane (it stops and starts kube-apiserver, and watches
etcd), not an existing cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import ControlPlane, RabbitMQCluster
from tests.chaos.system import ChaosSystem


@pytest.fixture(scope="session")
def cluster() -> Iterator[RabbitMQCluster]:
    with RabbitMQCluster() as nodes:
        yield nodes


@pytest.fixture
def system(control_plane: ControlPlane, cluster: RabbitMQCluster, namespace: str,
           tmp_path: Path) -> Iterator[ChaosSystem]:
    assert control_plane.etcd_url, (
        "the chaos suite runs against the local control plane (it stops kube-apiserver "
        "and watches etcd), not an existing cluster")
    chaos = ChaosSystem(control_plane, cluster, namespace, tmp_path)
    try:
        yield chaos
    finally:
        chaos.stop()
