"""Session fixtures that start the real services: RabbitMQ and the local control plane.

Nothing here skips: if a service cannot start, the tests that need it fail, loudly.
"""

from __future__ import annotations

import collections
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import ControlPlane, RabbitMQ

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "deploy" / "crds" / "asynctask.dev_asynctasks.yaml"


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    with RabbitMQ(management=True) as node:
        yield node


@pytest.fixture(scope="session")
def amqp_url(rabbitmq: RabbitMQ) -> str:
    return rabbitmq.url


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    with ControlPlane() as cp:
        cp.kubectl("apply", "-f", str(CRD))
        cp.kubectl("wait", "--for=condition=Established", "crd/asynctasks.asynctask.dev",
                   "--timeout=60s")
        yield cp


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> Path:
    return control_plane.kubeconfig


@pytest.fixture
def namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace per test, deleted afterwards (without waiting)."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", name)
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


# A per-folder tally at the end of the run, so CI output shows that every layer ran.
_outcomes: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    folder = Path(report.fspath).parent.name
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[folder][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("tests per folder")
    for folder in sorted(_outcomes):
        counts = _outcomes[folder]
        terminalreporter.write_line(
            f"tests/{folder}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped")
    if os.environ.get("CI") and any(c["skipped"] for c in _outcomes.values()):
        terminalreporter.write_line("CI: some tests were skipped (see above)")
