"""Fixtures of the conformance suite (issue 25, docs/conformance.md): the suite's own
RabbitMQ (so that it may restart it) and operator against the session's control plane, the
SDK under test (``sdk``: ``python``, ``typescript``), its conformance workers, and the
table of cases by SDK printed at the end of the session.

The operator serves the namespaces ``cf-*`` only; each test gets one of its own.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testbed import ControlPlane, RabbitMQ, probes
from testbed._proc import free_port
from testbed.s3 import S3Server
from tests.conformance.harness import (
    MARK,
    SDKS,
    SHARED_QUEUES,
    TS_DIR,
    Broker,
    ConformanceWorker,
)
from tests.conftest import local_control_plane
from tests.e2e.system import Process, operator_ready, running, system_env

#: The cases of docs/protocol.md's table "What an implementation is judged on", by test.
CASES = {
    "test_success": "success",
    "test_a_short_task_sends_only_its_end": "start window",
    "test_business_failure_vs_crash": "business failure vs crash",
    "test_progress": "progress",
    "test_cooperative_cancel": "cooperative cancel",
    "test_hard_stop": "hard stop",
    "test_time_limit": "time limit",
    "test_redelivery_after_a_kill": "redelivery after a kill",
    "test_duplicate_delivery": "duplicate delivery",
    "test_sigterm_drain": "SIGTERM drain",
    "test_broker_restart": "broker restart",
    "test_result_size": "result size",
    "test_malformed_messages": "malformed messages",
    "test_stored_payloads": "stored payloads",
}

MakeWorker = Callable[..., ConformanceWorker]


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A control plane of the suite's own. AsyncQueues are cluster-scoped and every operator
    reports the status of all of them, so the suite's operator on the e2e tests' control
    plane would overwrite what their operator reports (``make test`` runs both at once)."""
    with local_control_plane() as cp:
        yield cp


@pytest.fixture(scope="session")
def conformance_rabbitmq() -> Iterator[RabbitMQ]:
    """A RabbitMQ node of the suite's own: the broker restart case restarts it."""
    with RabbitMQ(management=True) as node:
        yield node


@pytest.fixture(scope="session")
def broker(conformance_rabbitmq: RabbitMQ) -> Broker:
    return Broker(conformance_rabbitmq)


@pytest.fixture(scope="session")
def conformance_bucket(s3: S3Server) -> str:
    """The bucket of the suite's operator (large payloads on: docs/payloads.md)."""
    return s3.create_bucket(f"cf-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="session")
def conformance_operator(
    control_plane: ControlPlane,
    conformance_rabbitmq: RabbitMQ,
    s3: S3Server,
    conformance_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Process]:
    """The suite's operator, with object storage configured: every task message carries a
    grant (workers get no storage settings; they need none)."""
    env = dict(
        system_env(control_plane, conformance_rabbitmq),
        **s3.env(conformance_bucket),
        ASYNCTASK_METRICS_PORT=str(free_port()),
        ASYNCTASK_METRICS_ADDRESS="127.0.0.1",
    )
    live = free_port()
    args = ["--standalone", "--namespace", "cf-*", "--liveness", probes.liveness_url(live)]
    with running(
        "conformance-operator",
        [sys.executable, "-m", "asynctask_operator", *args],
        env,
        tmp_path_factory.mktemp("conformance-operator"),
        ready=operator_ready(live),
    ) as proc:
        yield proc


@pytest.fixture
def cf_ns(control_plane: ControlPlane, conformance_operator: Process) -> Iterator[str]:
    """A namespace of this test's own, served by the suite's operator."""
    name = f"cf-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="session", params=SDKS)
def sdk(request: pytest.FixtureRequest) -> str:
    """The SDK under test. TypeScript runs once its SDK is on the branch (worker-ts/),
    built here with its own ``npm run build``."""
    name = str(request.param)
    if name == "typescript":
        if not TS_DIR.is_dir():
            pytest.skip("worker-ts/ does not exist on this branch yet (the TypeScript SDK)")
        npm = shutil.which("npm")
        assert npm, "npm is needed to build worker-ts/"
        subprocess.run([npm, "run", "build"], cwd=TS_DIR, check=True, timeout=300)
    return name


@pytest.fixture(scope="session")
def shared_worker(
    sdk: str,
    broker: Broker,
    conformance_operator: Process,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ConformanceWorker]:
    """One worker of the SDK for the cases that need no worker of their own: every
    handler but ``conformance.mark``; concurrency 4, cancel grace 2 s."""
    worker = ConformanceWorker(
        sdk, broker, SHARED_QUEUES, tmp_path_factory.mktemp(f"{sdk}-shared"), concurrency=4
    )
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def worker(shared_worker: ConformanceWorker) -> ConformanceWorker:
    """The shared worker, serving (it may be reconnecting after the broker restart case)."""
    shared_worker.wait_serving()
    return shared_worker


@pytest.fixture
def make_worker(
    sdk: str, broker: Broker, conformance_operator: Process, tmp_path: Path
) -> Iterator[MakeWorker]:
    """Start workers of this test's own serving ``conformance.mark`` (stopped afterwards)."""
    started: list[ConformanceWorker] = []

    def make(concurrency: int = 1, grace_period: float = 30) -> ConformanceWorker:
        logdir = tmp_path / f"worker-{len(started)}"
        logdir.mkdir()
        w = ConformanceWorker(
            sdk, broker, (MARK,), logdir, concurrency=concurrency, grace_period=grace_period
        )
        started.append(w)
        return w

    yield make
    for w in started:
        w.stop()


# The table: case by SDK ------------------------------------------------------------------

_results: dict[tuple[str, str], str] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    test, _, param = report.nodeid.rpartition("::")[2].partition("[")
    if test not in CASES or not param:
        return
    key = (CASES[test], param.rstrip("]"))
    # The call's outcome; a failed (or skipped) setup or a failed teardown too, and a
    # failure is never overwritten by a later phase.
    if (report.when == "call" or report.outcome != "passed") and _results.get(key) != "failed":
        _results[key] = report.outcome


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _results:
        return
    terminalreporter.section("conformance: case by SDK")
    width = max(len(c) for c in CASES.values())
    terminalreporter.write_line(f"{'case':<{width}}  " + "  ".join(f"{s:<10}" for s in SDKS))
    counts: collections.Counter[str] = collections.Counter()
    for case in CASES.values():
        cells = [_results.get((case, s), "not run") for s in SDKS]
        counts.update(cells)
        terminalreporter.write_line(f"{case:<{width}}  " + "  ".join(f"{c:<10}" for c in cells))
    terminalreporter.write_line(", ".join(f"{n} {what}" for what, n in sorted(counts.items())))
