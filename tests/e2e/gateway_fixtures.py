"""e2e fixtures of the HTTP gateway: the gateway as a process with the chart's ServiceAccount
token and RBAC, and a worker for the gateway tests' handlers. Test modules load them with
``pytest_plugins = ["tests.e2e.gateway_fixtures"]``.

Two served namespaces (``t-gw...``, so the shared operator serves them too): callers of the
tests get rights in the first one only, so a call on the second shows a 403.
"""

from __future__ import annotations

import contextlib
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import ControlPlane, RabbitMQ
from testbed._proc import free_port
from tests.e2e.chart import GatewayIdentity, gateway_container, gateway_rbac
from tests.e2e.gateway_client import (
    CALLER_VERBS,
    Gateway,
    gateway_app_worker,
    gateway_ready,
    grant,
)
from tests.e2e.system import Process, running, system_env


@contextlib.contextmanager
def chart_gateway(
    name: str,
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    container: dict[str, Any],
    identity: GatewayIdentity,
    folder: Path,
    **extra_env: str,
) -> Iterator[tuple[Process, int, dict[str, str]]]:
    """A gateway process run as the chart's ``container`` runs it: the chart's environment,
    the chart ServiceAccount's kubeconfig, a free port on loopback (no pod network here) and
    ``extra_env``; yields the process, its port and its environment once it answers."""
    port = free_port()
    env = system_env(control_plane, rabbitmq)
    env.update({e["name"]: e["value"] for e in container["env"]})
    env.update(
        KUBECONFIG=str(identity.kubeconfig(control_plane, folder / "kubeconfig")),
        ASYNCTASK_GATEWAY_PORT=str(port),
        ASYNCTASK_GATEWAY_ADDRESS="127.0.0.1",
        **extra_env,
    )
    with running(
        name,
        [sys.executable, "-m", "asynctask_gateway"],
        env,
        folder,
        ready=gateway_ready(port),
    ) as proc:
        yield proc, port, env


@pytest.fixture(scope="session")
def gateway(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Gateway]:
    """The gateway serving two fresh namespaces with the chart's ServiceAccount and RBAC
    (the process's KUBECONFIG holds that ServiceAccount's token only); a ``writer`` and a
    ``reader`` caller with rights in the first namespace, and the chart's environment for
    the gateway container. Low per-caller limits and a short keepalive let the tests reach
    them quickly."""
    suffix = uuid.uuid4().hex[:6]
    home, served, other = f"gw-{suffix}", f"t-gw{suffix}-a", f"t-gw{suffix}-b"
    for ns in (home, served, other):
        control_plane.kubectl("create", "namespace", ns)
    folder = tmp_path_factory.mktemp("gateway")
    with gateway_rbac(control_plane, home, served=[served, other]) as identity:
        tokens = {
            kind: grant(control_plane, served, kind, verbs) for kind, verbs in CALLER_VERBS.items()
        }
        # The chart's command and environment for the gateway container, with the limits
        # set low through the chart's values; only the port (no pod network here) and the
        # keepalive interval are the tests' own.
        container = gateway_container(
            control_plane,
            home,
            served=[served, other],
            values=["gateway.maxStreamsPerUser=3", "gateway.maxWaitsPerUser=3"],
        )
        assert container["command"] == ["asynctask-gateway"]
        with chart_gateway(
            "gateway",
            control_plane,
            rabbitmq,
            container,
            identity,
            folder,
            ASYNCTASK_GATEWAY_KEEPALIVE_SECONDS="2",
        ) as (proc, port, env):
            assert env["ASYNCTASK_GATEWAY_NAMESPACES"] == f"{served},{other}"
            yield Gateway(proc, port, served, other, identity, tokens)
    for ns in (home, served, other):
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.fixture(scope="session")
def gateway_worker(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    """A worker for ``gw-sleepy`` (``gw-steps`` is served by workers the tests start, so a
    stream can be opened before any worker takes the task)."""
    with gateway_app_worker(
        control_plane, rabbitmq, "gw-sleepy", tmp_path_factory.mktemp("gateway-worker")
    ) as proc:
        yield proc
