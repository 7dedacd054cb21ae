"""The system under test as local processes, for the e2e tests and the chaos suite: a
process of the system with its log kept (:class:`Process`), a process started and stopped
around a block (:func:`running`), readiness from probes and metrics, and the environment the
operator and the workers get against the test bed's control plane and RabbitMQ."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from testbed import ControlPlane, RabbitMQ, probes, wait_until

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


class PeeredOperators:
    """Operator replicas electing a leader with ``--peering LEASE`` in a namespace of their
    own (with a RabbitMQ virtual host of its own), for the leader-election e2e test and the
    schedule chaos test. Everything started is stopped by ``stack``."""

    def __init__(
        self,
        cp: ControlPlane,
        rmq: RabbitMQ,
        logs: Path,
        stack: contextlib.ExitStack,
        *,
        lease: str,
        prefix: str,
    ) -> None:
        self.cp, self.stack, self.logs, self.lease_name = cp, stack, logs, lease
        self.namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
        cp.kubectl("create", "namespace", self.namespace)
        stack.callback(
            cp.kubectl, "delete", "namespace", self.namespace, "--wait=false", check=False
        )
        self.env = dict(
            system_env(cp, rmq),
            ASYNCTASK_AMQP_URL=rmq.add_vhost(self.namespace),
            ASYNCTASK_AUTOSCALING_ENABLED="false",
            ASYNCTASK_METRICS_ADDRESS="127.0.0.1",
            POD_NAMESPACE=self.namespace,
        )

    def process(self, name: str, live: int, **env: str) -> Process:
        """Start a replica (``wait_ready`` tells when it serves)."""
        args = [sys.executable, "-m", "asynctask_operator", "--peering", self.lease_name]
        args += ["--namespace", self.namespace, "--liveness", probes.liveness_url(live)]
        return Process(name, args, dict(self.env, POD_NAME=name, **env), self.logs,
                       ready=operator_ready(live))  # fmt: skip

    def lease(self) -> dict[str, Any]:
        out = self.cp.kubectl(
            "get", "lease", self.lease_name, "-n", self.namespace, "-o", "json", check=False
        )
        if out.returncode != 0:
            return {}
        spec: dict[str, Any] = json.loads(out.stdout).get("spec", {})
        return spec

    def holder(self) -> str:
        return str(self.lease().get("holderIdentity") or "")
