"""e2e fixtures of the Python client and the CLI: a worker for their handlers
(tests/e2e/client_app.py), and one client per transport on the gateway fixture's namespace
with the same caller (the ``writer`` ServiceAccount) either way. Test modules load them with
``pytest_plugins = ["tests.e2e.gateway_fixtures", "tests.e2e.client_fixtures"]``."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynctask_client import Client
from testbed import ControlPlane, RabbitMQ
from testbed._proc import free_port
from tests.e2e.chart import token_kubeconfig
from tests.e2e.gateway_client import Gateway
from tests.e2e.system import Process, running, system_env, worker_ready

CLIENT_QUEUES = "cl-steps,cl-refuses,cl-raises,cl-sleepy"


@pytest.fixture(scope="session")
def client_worker(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    env = dict(system_env(control_plane, rabbitmq), ASYNCTASK_WORKER_CANCEL_GRACE_SECONDS="3")
    port = free_port()
    with running(
        "client-worker",
        [
            sys.executable,
            "-m",
            "asynctask_worker",
            "tests.e2e.client_app:app",
            "--concurrency",
            "6",
            "--queues",
            CLIENT_QUEUES,
            "--metrics-port",
            str(port),
        ],
        env,
        tmp_path_factory.mktemp("client-worker"),
        ready=worker_ready(port),
    ) as proc:
        yield proc


@pytest.fixture(scope="session")
def writer_kubeconfig(
    control_plane: ControlPlane, gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The gateway tests' ``writer`` caller, as a kubeconfig for the Kubernetes API (its
    token, the cluster's CA, the served namespace as the context's)."""
    return token_kubeconfig(
        control_plane, gateway.namespace, "writer", tmp_path_factory.mktemp("writer") / "kubeconfig"
    )


@pytest.fixture(params=["kubernetes", "gateway"])
def client(
    request: pytest.FixtureRequest,
    gateway: Gateway,
    writer_kubeconfig: Path,
    client_worker: Process,
) -> Iterator[Client]:
    """The same caller, through the Kubernetes API or through the gateway."""
    if request.param == "kubernetes":
        made = Client.from_kubeconfig(path=str(writer_kubeconfig))
    else:
        made = Client(gateway.url, token=gateway.tokens["writer"], namespace=gateway.namespace)
    assert made.namespace == gateway.namespace
    with made:
        yield made
