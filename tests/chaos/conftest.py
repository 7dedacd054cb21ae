"""Chaos fixtures: the 3-node RabbitMQ cluster (session) and one scenario's system.

The suite needs the local control plane (it stops and starts kube-apiserver, and watches
etcd), not an existing cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from testbed import ControlPlane, RabbitMQCluster
from tests.chaos.system import ChaosSystem


@pytest.fixture(scope="session")
def cluster() -> Iterator[RabbitMQCluster]:
    with RabbitMQCluster() as nodes:
        yield nodes


@pytest.fixture(scope="module")
def system(
    control_plane: ControlPlane, cluster: RabbitMQCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChaosSystem]:
    """One operator and four workers for the scenarios of a module, in a namespace and a
    virtual host of their own."""
    assert control_plane.etcd_url, (
        "the chaos suite runs against the local control plane (it stops kube-apiserver "
        "and watches etcd), not an existing cluster"
    )
    namespace = f"chaos-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", namespace)
    chaos = ChaosSystem(control_plane, cluster, namespace, tmp_path_factory.mktemp("chaos"))
    try:
        yield chaos
    finally:
        chaos.stop()
        control_plane.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
