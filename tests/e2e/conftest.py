"""e2e fixtures: the operator and the example worker as local processes against the
real control plane and RabbitMQ. The helpers behind them are in tests/e2e/system.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import ControlPlane, RabbitMQ, probes
from testbed._proc import free_port
from tests.e2e.system import Process, operator_ready, running, system_env, worker_ready


@pytest.fixture(scope="session")
def operator(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Process]:
    # The shared operator serves the per-test namespaces (t-*); a test that runs an operator
    # of its own (e.g. with a ServiceAccount's token) uses a namespace outside that pattern.
    env = dict(
        system_env(control_plane, rabbitmq),
        ASYNCTASK_METRICS_PORT=str(free_port()),
        ASYNCTASK_METRICS_ADDRESS="127.0.0.1",
    )
    live = free_port()
    with running(
        "operator",
        [
            sys.executable,
            "-m",
            "asynctask_operator",
            "--standalone",
            "--namespace",
            "t-*",
            "--liveness",
            probes.liveness_url(live),
        ],
        env,
        tmp_path_factory.mktemp("operator"),
        ready=operator_ready(live),
    ) as proc:
        yield proc


@pytest.fixture(scope="session")
def worker(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    port = free_port()
    with running(
        "worker",
        [
            sys.executable,
            "-m",
            "asynctask_worker",
            "example_tasks:app",
            "--concurrency",
            "4",
            "--metrics-port",
            str(port),
        ],
        system_env(control_plane, rabbitmq),
        tmp_path_factory.mktemp("worker"),
        ready=worker_ready(port),
    ) as proc:
        yield proc


@pytest.fixture(scope="session")
def markers(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where lifecycle handlers leave marker files (see lifecycle_app.py)."""
    return tmp_path_factory.mktemp("markers")


LIFECYCLE_QUEUES = "burst,sleepy,ticking,flaky,refuses,huge-result,stopwatch,echo,stamp"


@pytest.fixture(scope="session")
def lifecycle_worker(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    markers: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    """A worker for the lifecycle handlers (not poison/marker: tests run those themselves)."""
    env = dict(
        system_env(control_plane, rabbitmq),
        LIFECYCLE_MARKERS=str(markers),
        ASYNCTASK_WORKER_CANCEL_GRACE_SECONDS="3",
    )
    port = free_port()
    with running(
        "lifecycle-worker",
        [
            sys.executable,
            "-m",
            "asynctask_worker",
            "tests.e2e.lifecycle_app:app",
            "--concurrency",
            "6",
            "--queues",
            LIFECYCLE_QUEUES,
            "--metrics-port",
            str(port),
        ],
        env,
        tmp_path_factory.mktemp("lifecycle-worker"),
        ready=worker_ready(port),
    ) as proc:
        yield proc
