"""e2e fixtures: the operator and the example worker as local processes against the
real control plane and RabbitMQ."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed import ControlPlane, RabbitMQ, probes
from testbed._proc import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]


class Process:
    """A background process of the system under test, with its log kept for failures.

    ``ready`` says whether it is ready, from a probe or a metric (:mod:`testbed.probes`),
    never from its log's wording."""

    def __init__(
        self,
        name: str,
        args: list[str],
        env: dict[str, str],
        logdir: Path,
        ready: Callable[[], bool] | None = None,
    ) -> None:
        self.name = name
        self.env = env
        self.ready = ready
        self.log = logdir / f"{name}.log"
        self._out = self.log.open("wb")
        self.proc = subprocess.Popen(
            args, env=env, stdout=self._out, stderr=subprocess.STDOUT, cwd=REPO
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until(self, what: str, check: Callable[[], bool], timeout: float = 30) -> None:
        """Until ``check()`` holds; fails at once with the log's tail if the process exits."""
        wait_until(
            f"{self.name}: {what}", check, timeout, [(self.name, self.proc, self.log)], interval=0.1
        )

    def wait_ready(self, timeout: float = 30) -> None:
        assert self.ready is not None, f"{self.name} has no readiness check"
        self.wait_until("ready (probe or metric)", self.ready, timeout)

    def wait_for_log(self, needle: str, timeout: float = 30) -> None:
        """Until ``needle`` is in the log: for what a test checks is said, not for readiness."""
        self.wait_until(f"{needle!r} in its log", lambda: needle in self.text(), timeout)

    def restart(self) -> None:
        """Stop the process and start it again with the same command and environment."""
        self.stop()
        self._out = self.log.open("ab")
        self.proc = subprocess.Popen(
            self.proc.args, env=self.env, stdout=self._out, stderr=subprocess.STDOUT, cwd=REPO
        )

    def stop(self, timeout: float = 15) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


@contextlib.contextmanager
def running(
    name: str,
    args: list[str],
    env: dict[str, str],
    logdir: Path,
    *,
    ready: Callable[[], bool],
    timeout: float = 30,
) -> Iterator[Process]:
    """A process started, waited for until ``ready()``, stopped afterwards; the tail of
    its log is printed, so a failing test shows what the process said."""
    proc = Process(name, args, env, logdir, ready)
    try:
        proc.wait_ready(timeout)
        yield proc
    finally:
        proc.stop()
        print(f"\n--- {name} log (tail) ---\n{proc.text()[-3000:]}")


def operator_ready(liveness_port: int) -> Callable[[], bool]:
    """An operator started with ``--liveness`` on this port is ready once its ``broker``
    probe says it is connected to RabbitMQ."""
    url = probes.liveness_url(liveness_port)
    return lambda: probes.operator_connected(url)


def worker_ready(metrics_port: int) -> Callable[[], bool]:
    """A worker serving metrics on this port is ready once its readiness gauge is 1: it
    consumes its task queues."""
    url = probes.metrics_url(metrics_port)
    return lambda: probes.worker_ready(url)


def system_env(cp: ControlPlane, rmq: RabbitMQ) -> dict[str, str]:
    env = cp.env()
    env.update(
        ASYNCTASK_AMQP_URL=rmq.url,
        ASYNCTASK_WORKER_AMQP_URL=rmq.url,
        ASYNCTASK_MANAGEMENT_URL=rmq.management_url,
        ASYNCTASK_SCALE_DOWN_WINDOW_SECONDS="5",
        # webhook receivers of the tests listen on 127.0.0.1 (and only there)
        ASYNCTASK_WEBHOOK_ALLOWED_CIDRS="127.0.0.1/32",
        PYTHONPATH=os.pathsep.join([str(REPO / "examples"), env.get("PYTHONPATH", "")]),
    )
    return env


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


LIFECYCLE_QUEUES = "burst,sleepy,ticking,flaky,refuses,huge-result,stopwatch,echo"


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
