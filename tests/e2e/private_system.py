"""An operator and a worker of a test's own: a virtual host and a namespace of their own.

For tests that count everything in a queue (nothing else publishes there) or that need
the whole system's logs to themselves. The namespace is outside the shared operator's
``t-*``; the worker serves the ``echo`` queue of tests/e2e/lifecycle_app.py.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import ControlPlane, RabbitMQ, probes
from testbed._proc import free_port
from tests.e2e.system import Process, operator_ready, running, system_env, worker_ready

QUEUE = "echo"


@pytest.fixture
def fuzz_ns(control_plane: ControlPlane) -> Iterator[str]:
    """A namespace outside the shared operator's ``t-*``: only this test's operator sees it."""
    name = f"fz-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false")


@pytest.fixture
def fuzz_url(rabbitmq: RabbitMQ) -> Iterator[str]:
    vhost = f"fz-{uuid.uuid4().hex[:8]}"
    yield rabbitmq.add_vhost(vhost)
    rabbitmq.delete_vhost(vhost)


@pytest.fixture
def system(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    fuzz_ns: str,
    fuzz_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[tuple[Process, Process]]:
    """The private operator and worker; the worker serves the test module's
    ``WORKER_QUEUES`` (of tests/e2e/lifecycle_app.py), else :data:`QUEUE`."""
    worker_queues = str(getattr(request.module, "WORKER_QUEUES", QUEUE))
    env = dict(
        system_env(control_plane, rabbitmq),
        ASYNCTASK_AMQP_URL=fuzz_url,
        ASYNCTASK_WORKER_AMQP_URL=fuzz_url,
        LIFECYCLE_MARKERS=str(tmp_path),
    )
    live, metrics = free_port(), free_port()
    with (
        running(
            "private-operator",
            [
                sys.executable,
                "-m",
                "asynctask_operator",
                "--standalone",
                "--namespace",
                fuzz_ns,
                "--liveness",
                probes.liveness_url(live),
            ],
            env,
            tmp_path,
            ready=operator_ready(live),
        ) as operator,
        running(
            "private-worker",
            [
                sys.executable,
                "-m",
                "asynctask_worker",
                "tests.e2e.lifecycle_app:app",
                "--queues",
                worker_queues,
                "--concurrency",
                "4",
                "--metrics-port",
                str(metrics),
            ],
            env,
            tmp_path,
            ready=worker_ready(metrics),
        ) as worker,
    ):
        yield operator, worker
