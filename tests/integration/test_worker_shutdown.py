"""The worker CLI as a process: SIGTERM with work in flight, and a worker that is killed."""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from asynctask_worker import Phase
from testbed import probes, wait_until
from testbed._proc import free_port
from tests.integration.worker_harness import (
    APP_SPEC,
    REPO,
    BrokerClient,
    markers,
    running_worker,
    worker_env,
)

pytestmark = pytest.mark.integration


class CliWorker:
    """``python -m asynctask_worker tests.integration.worker_harness:app ...``"""

    def __init__(self, url: str, logdir: Path, *args: str) -> None:
        self.log = logdir / f"worker-{uuid.uuid4().hex[:6]}.log"
        port = free_port()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "asynctask_worker",
                    APP_SPEC,
                    *args,
                    "--metrics-port",
                    str(port),
                ],
                env=worker_env(url),
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        # Ready as its readiness gauge says: consuming its queues.
        wait_until(
            "the worker to serve",
            lambda: not self.alive() or probes.worker_ready(probes.metrics_url(port)),
            timeout=60,
        )
        assert self.alive(), self.text()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait(self, timeout: float = 60) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError(f"the worker did not exit in {timeout}s:\n{self.text()}") from None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def cli(url: str, tmp_path: Path) -> Iterator[list[CliWorker]]:
    started: list[CliWorker] = []
    yield started
    for worker in started:
        worker.kill()


def test_sigterm_requeues_work_still_running_after_the_grace_period(
    url: str, broker: BrokerClient, tmp_path: Path, cli: list[CliWorker]
) -> None:
    worker = CliWorker(url, tmp_path, "--concurrency", "2", "--grace-period", "1")
    cli.append(worker)
    hold = tmp_path / "hold"  # the handlers work while it exists
    hold.touch()
    request = {"dir": str(tmp_path), "seconds": 0.2, "while_file": str(hold), "cooperative": False}
    refs = [broker.publish_task("it-run", request) for _ in range(3)]
    wait_until("two tasks to start", lambda: len(list(tmp_path.glob("*.started"))) == 2, 20)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.text()
    assert "still running after the grace period: requeued" in worker.text()
    for ref in refs:  # nothing was reported done by the stopped worker
        assert not [s for s in broker.statuses(ref) if s.phase.terminal]
    assert broker.ready("it-run") == 3  # 2 requeued + 1 never delivered: none lost

    hold.unlink()
    with running_worker(url, concurrency=3):
        ends = [broker.terminal(ref) for ref in refs]
    assert [e.phase for e in ends] == [Phase.SUCCEEDED] * 3
    for ref in refs:  # one outcome per task: none done twice
        assert len([s for s in broker.statuses(ref) if s.phase.terminal]) == 1
    # The two that were interrupted come back as attempt 2 (x-delivery-count).
    assert sorted(e.attempt for e in ends) == [1, 2, 2]
    assert broker.ready("it-run") == 0


def test_sigterm_lets_running_work_finish_within_the_grace_period(
    url: str, broker: BrokerClient, tmp_path: Path, cli: list[CliWorker]
) -> None:
    worker = CliWorker(url, tmp_path, "--grace-period", "60")
    cli.append(worker)
    ref = broker.publish_task("it-run", {"dir": str(tmp_path), "seconds": 2})
    wait_until("the task to start", lambda: bool(markers(tmp_path, ref, "started")), 20)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.wait() == 0, worker.text()
    end = broker.terminal(ref, timeout=5)  # reported before the worker exited
    assert end.phase is Phase.SUCCEEDED and end.attempt == 1
    assert broker.ready("it-run") == 0  # and acked


def test_the_task_of_a_killed_worker_is_redelivered_as_a_new_attempt(
    url: str, broker: BrokerClient, tmp_path: Path, cli: list[CliWorker]
) -> None:
    worker = CliWorker(url, tmp_path)
    cli.append(worker)
    ref = broker.publish_task(
        "it-run", {"dir": str(tmp_path), "seconds": 0.2, "first_attempt_seconds": 120}
    )
    wait_until("the task to start", lambda: bool(markers(tmp_path, ref, "started")), 20)
    worker.kill()  # SIGKILL: no goodbye, the delivery is simply unacked
    with running_worker(url):
        end = broker.terminal(ref)
    assert end.phase is Phase.SUCCEEDED and end.attempt == 2
    assert [p.name.split(".")[1] for p in markers(tmp_path, ref, "started")] == ["1", "2"]
    assert {s.attempt for s in broker.statuses(ref) if s.phase is Phase.PROCESSING} == {1, 2}
