"""Session fixtures that start the real services: RabbitMQ, the local control plane and (for
the history archive) PostgreSQL.

Nothing here skips: if a service cannot start, the tests that need it fail, loudly.

An existing cluster instead of the local control plane (``make kind-e2e``, docs/deploying.md):
``ASYNCTASK_E2E_KUBECONFIG`` (admin kubeconfig; the AsyncTask CRD is applied to it) with
``ASYNCTASK_E2E_AMQP_URL`` and ``ASYNCTASK_E2E_MANAGEMENT_URL`` (a RabbitMQ reachable from
this machine) and, optionally, ``ASYNCTASK_E2E_AUDIT_LOG`` (the apiserver's audit log, for
the tests that count API writes). Unset, the fixtures start their own services.
"""

from __future__ import annotations

import collections
import contextlib
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from testbed import ControlPlane, PostgreSQL, RabbitMQ, S3Server
from testbed.controlplane import build_binaries

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "deploy" / "crds" / "asynctask.dev_asynctasks.yaml"
SCHEDULE_CRD = REPO / "deploy" / "crds" / "asynctask.dev_asynctaskschedules.yaml"
QUEUE_CRD = REPO / "deploy" / "crds" / "asynctask.dev_asyncqueues.yaml"
ADMISSION = REPO / "deploy" / "admission"  # the policy that makes spec.request immutable
EXISTING_CLUSTER = os.environ.get("ASYNCTASK_E2E_KUBECONFIG", "")


class ExistingRabbitMQ(RabbitMQ):
    """A broker that already runs (ASYNCTASK_E2E_AMQP_URL, ASYNCTASK_E2E_MANAGEMENT_URL):
    the URLs and virtual hosts of a started node; nothing is started or stopped."""

    def __init__(self, url: str, management_url: str) -> None:
        super().__init__(management=True)
        self._url, self._management_url = url, management_url.rstrip("/")

    @property
    def url(self) -> str:
        return self._url

    @property
    def management_url(self) -> str:
        return self._management_url

    def vhost_url(self, vhost: str) -> str:
        parts = urllib.parse.urlsplit(self._url)
        return parts._replace(path="/" + urllib.parse.quote(vhost, safe="")).geturl()

    def stop(self) -> None:
        pass


@pytest.fixture(scope="session")
def rabbitmq() -> Iterator[RabbitMQ]:
    if EXISTING_CLUSTER:
        yield ExistingRabbitMQ(
            os.environ["ASYNCTASK_E2E_AMQP_URL"], os.environ["ASYNCTASK_E2E_MANAGEMENT_URL"]
        )
        return
    with RabbitMQ(management=True) as node:
        yield node


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgreSQL]:
    """A private PostgreSQL server for the session (the history archive's tests)."""
    with PostgreSQL() as server:
        yield server


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Server]:
    """A private S3-compatible server for the session (large payloads' tests); each test
    module makes a bucket of its own (``s3.create_bucket``)."""
    with S3Server() as server:
        yield server


@pytest.fixture
def database_url(postgres: PostgreSQL) -> Iterator[str]:
    """An empty database of its own per test on the session's server, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


@pytest.fixture(scope="session")
def amqp_url(rabbitmq: RabbitMQ) -> str:
    return rabbitmq.url


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    if EXISTING_CLUSTER:  # not started nor stopped here: kubectl (pinned) and a kubeconfig
        audit = os.environ.get("ASYNCTASK_E2E_AUDIT_LOG", "")
        cp = ControlPlane(
            bin_dir=build_binaries(),
            kubeconfig=Path(EXISTING_CLUSTER),
            audit_log=Path(audit) if audit else Path(),
        )
        cp.install_crd(CRD, server_side=True)
        cp.install_crd(SCHEDULE_CRD, server_side=True)
        cp.install_crd(QUEUE_CRD, server_side=True)
        cp.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ADMISSION))
        yield cp
        return
    with local_control_plane() as cp:
        yield cp


@contextlib.contextmanager
def local_control_plane() -> Iterator[ControlPlane]:
    """A control plane of the test bed's, with AsyncTask's CRDs and admission policy."""
    with ControlPlane() as cp:
        cp.install_crd(CRD)
        cp.install_crd(SCHEDULE_CRD)
        cp.install_crd(QUEUE_CRD)
        cp.kubectl("apply", "-f", str(ADMISSION))
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
    # The layer (unit, integration, e2e), also for tests in sub-folders (tests/unit/worker/).
    folder = Path(report.fspath).resolve().relative_to(REPO / "tests").parts[0]
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _outcomes[folder][report.outcome] += 1


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    terminalreporter.section("tests per folder")
    for folder in sorted(_outcomes):
        counts = _outcomes[folder]
        terminalreporter.write_line(
            f"tests/{folder}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped"
        )
    if os.environ.get("CI") and any(c["skipped"] for c in _outcomes.values()):
        terminalreporter.write_line("CI: some tests were skipped (see above)")
