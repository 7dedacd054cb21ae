"""A RabbitMQ restart while tasks run: the worker reconnects and nothing runs twice."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from asynctask_worker import Phase
from testbed import RabbitMQ, wait_until
from tests.integration.worker_harness import BrokerClient, markers, running_worker

pytestmark = pytest.mark.integration


def test_broker_restart_during_work(
    rabbitmq: RabbitMQ,
    url: str,
    broker: BrokerClient,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    release_a, release_b = tmp_path / "release-a", tmp_path / "release-b"
    with running_worker(url, concurrency=2, heartbeat_seconds=5) as worker:
        a = broker.publish_task("it-run", {"dir": str(tmp_path), "until_file": str(release_a)})
        b = broker.publish_task("it-run", {"dir": str(tmp_path), "until_file": str(release_b)})
        wait_until("both tasks to start", lambda: len(list(tmp_path.glob("*.started"))) == 2, 20)
        rabbitmq.stop_node()
        try:
            wait_until(
                "the readiness gauge to drop",
                lambda: worker.metrics.value("asynctask_worker_ready") == 0,
                20,
            )
            # b ends while the broker is away: its outcome waits for the broker to return.
            release_b.touch()
            wait_until("b to end", lambda: bool(markers(tmp_path, b, "ended")), 20)
        finally:
            rabbitmq.start_node()
        # The broker redelivers a and b (unacked when it went down): a is still running
        # here and b ended here, so neither runs again; both are acked once they report.
        wait_until(
            "the worker to reconnect",
            lambda: worker.connections >= 2 and worker.ready.is_set(),
            timeout=60,
        )
        assert worker.metrics.value("asynctask_worker_ready") == 1
        release_a.touch()
        end_a, end_b = broker.terminal(a, timeout=60), broker.terminal(b, timeout=60)
        c = broker.publish_task("it-run", {"dir": str(tmp_path)})  # and new work flows
        end_c = broker.terminal(c)
        wait_until("every delivery to be settled", lambda: worker.dispatcher.active == 0, 20)
    assert [e.phase for e in (end_a, end_b, end_c)] == [Phase.SUCCEEDED] * 3
    for ref in (a, b):
        assert len(markers(tmp_path, ref, "started")) == 1  # ran once
        assert len([s for s in broker.statuses(ref) if s.phase.terminal]) == 1
    assert broker.ready("it-run") == 0  # the redeliveries were acked, not left behind
    # The outage is told once per connection (consumer, status publisher), with its cause,
    # and so is the recovery; no ERROR (pika's own per-attempt tracebacks are quiet).
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    lost = sorted(
        m.partition(":")[0]
        for lvl, m in said
        if lvl == logging.WARNING and ": lost RabbitMQ (" in m
    )
    back = sorted(m.partition(":")[0] for lvl, m in said if ": reconnected to RabbitMQ" in m)
    assert (
        lost
        == back
        == sorted(
            [f"worker {worker.settings.worker_id}", f"status publisher {worker.settings.worker_id}"]
        )
    ), said
    assert [m for lvl, m in said if lvl >= logging.ERROR] == []
