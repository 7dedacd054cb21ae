"""Two operators side by side (docs/scaling-out.md): each owns its namespaces and has a
RabbitMQ virtual host of its own, so each task is handled by exactly one operator and run by
a worker of its shard. The namespaces lie outside the shared operator's ``t-*``."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from testbed import ControlPlane, RabbitMQ, probes
from testbed._proc import free_port
from tests.e2e.system import Process, operator_ready, running, system_env, worker_ready
from tests.e2e.tasks import create, wait_phase

pytestmark = pytest.mark.e2e


class Shard:
    def __init__(self, name: str, operator: Process, metrics_port: int, worker_id: str) -> None:
        self.namespace = name
        self.operator = operator
        self.metrics = probes.metrics_url(metrics_port)
        self.worker_id = worker_id


@pytest.fixture
def shards(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[Shard]]:
    suffix = uuid.uuid4().hex[:6]
    with ExitStack() as stack:
        made = []
        for letter in ("a", "b"):
            name = f"shard-{letter}-{suffix}"
            control_plane.kubectl("create", "namespace", name)
            stack.callback(
                control_plane.kubectl, "delete", "namespace", name, "--wait=false", check=False
            )
            url = rabbitmq.add_vhost(name)
            metrics, live, worker_port = free_port(), free_port(), free_port()
            env = dict(
                system_env(control_plane, rabbitmq),
                ASYNCTASK_AMQP_URL=url,
                ASYNCTASK_WORKER_AMQP_URL=url,
                ASYNCTASK_METRICS_PORT=str(metrics),
                ASYNCTASK_METRICS_ADDRESS="127.0.0.1",
                ASYNCTASK_WORKER_WORKER_ID=f"worker-{name}",
            )
            logs = tmp_path_factory.mktemp(name)
            operator = stack.enter_context(
                running(
                    f"operator-{letter}",
                    [
                        sys.executable,
                        "-m",
                        "asynctask_operator",
                        "--standalone",
                        "--namespace",
                        name,
                        "--liveness",
                        probes.liveness_url(live),
                    ],
                    env,
                    logs,
                    ready=operator_ready(live),
                )
            )
            stack.enter_context(
                running(
                    f"worker-{letter}",
                    [
                        sys.executable,
                        "-m",
                        "asynctask_worker",
                        "example_tasks:app",
                        "--metrics-port",
                        str(worker_port),
                    ],
                    env,
                    logs,
                    ready=worker_ready(worker_port),
                )
            )
            made.append(Shard(name, operator, metrics, f"worker-{name}"))
        yield made


def test_two_operators_each_own_their_namespaces_tasks(
    control_plane: ControlPlane, shards: list[Shard]
) -> None:
    for shard in shards:
        for i in range(3):
            create(
                control_plane,
                shard.namespace,
                f"task-{i}",
                queue="hello",
                request={"steps": 1, "step_seconds": 0},
            )
    for shard in shards:
        for i in range(3):
            st = wait_phase(control_plane, shard.namespace, f"task-{i}", "Succeeded")
            assert st["worker"] == shard.worker_id  # run by its own shard's worker
        # Its operator tracks its own three tasks and published exactly those.
        assert probes.metric(shard.metrics, "asynctask_operator_tasks_tracked") == 3
        assert (
            probes.metric(shard.metrics, "asynctask_operator_tasks_published_total", queue="hello")
            == 3
        )
