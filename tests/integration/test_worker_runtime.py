"""The worker against the real RabbitMQ: progress, outcomes, concurrency, heartbeats, metrics."""

from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from asynctask_worker import Phase
from testbed import wait_until
from tests.integration.worker_harness import BrokerClient, running_worker

pytestmark = pytest.mark.integration


def test_progress_then_success_reach_the_status_queue_in_order(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    with running_worker(url):
        ref = broker.publish_task("it-run", {"dir": str(tmp_path), "steps": 4})
        end = broker.terminal(ref)
    statuses = broker.statuses(ref)
    assert end.phase is Phase.SUCCEEDED and end.progress == 100
    # The thread pool runs the handler in this process: its result names this pid.
    assert end.result == {"pid": os.getpid(), "attempt": 1} and end.worker
    assert statuses[0].phase is Phase.PROCESSING and statuses[0].progress is None
    progress = [s.progress for s in statuses if s.progress is not None]
    assert progress == sorted(progress) and any(p < 100 for p in progress)
    assert [s.seq for s in statuses] == list(range(len(statuses)))  # one stream per attempt
    assert [s for s in statuses if s.phase.terminal] == [end]
    assert broker.ready("it-run") == 0  # acked (the worker is gone: nothing came back)


def test_business_failure_and_unexpected_error_are_told_apart(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    with running_worker(url, concurrency=2):
        refused = broker.publish_task("it-run", {"dir": str(tmp_path), "fail": "business"})
        broken = broker.publish_task("it-run", {"dir": str(tmp_path), "fail": "error"})
        failed, error = broker.terminal(refused), broker.terminal(broken)
    assert failed.phase is Phase.FAILED and failed.error is not None
    assert failed.error.reason == "InputRefused" and failed.error.traceback is None
    assert error.phase is Phase.ERROR and error.error is not None
    assert error.error.reason == "HandlerException"
    assert error.error.message == "ValueError: something unexpected"
    assert error.error.traceback is not None and "worker_harness.py" in error.error.traceback
    assert broker.ready("it-run") == 0


def test_concurrency_runs_tasks_side_by_side(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    # Each handler waits until all three started: one at a time, they would fail.
    with running_worker(url, concurrency=3):
        refs = [
            broker.publish_task("it-run", {"dir": str(tmp_path), "barrier": 3}) for _ in range(3)
        ]
        ends = [broker.terminal(r) for r in refs]
    assert [e.phase for e in ends] == [Phase.SUCCEEDED] * 3, [e.error for e in ends]


def test_heartbeats_flow_while_a_handler_burns_cpu(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    # 8 s of pure-Python CPU with a 2 s heartbeat. RabbitMQ drops a connection that sends
    # nothing for 2-3 heartbeat intervals, so a consumer that stopped pumping meanwhile
    # would have reconnected by the time the task is acked.
    with running_worker(url, heartbeat_seconds=2) as worker:
        ref = broker.publish_task("it-run", {"dir": str(tmp_path), "busy": True, "seconds": 8})
        end = broker.terminal(ref, timeout=60)
        wait_until("the delivery to be acked", lambda: worker.dispatcher.active == 0, 20)
        time.sleep(1)  # the ack goes out on the consumer's next pump
        assert end.phase is Phase.SUCCEEDED
        assert worker.connections == 1 and worker.publisher_connections == 1
        assert worker.ready.is_set()


def test_metrics_endpoint_counts_tasks_by_outcome(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    with running_worker(url, metrics_port=0, metrics_address="127.0.0.1") as worker:
        for request in ({"dir": str(tmp_path)}, {"dir": str(tmp_path), "fail": "business"}):
            broker.terminal(broker.publish_task("it-run", request))
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/metrics") as r:
            body = r.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    q = ("queue", "it-run")
    assert samples[("asynctask_worker_tasks_started_total", (q,))] == 2
    assert samples[("asynctask_worker_tasks_finished_total", (("outcome", "Succeeded"), q))] == 1
    assert samples[("asynctask_worker_tasks_finished_total", (("outcome", "Failed"), q))] == 1
    assert (
        samples[("asynctask_worker_task_duration_seconds_count", (("outcome", "Failed"), q))] == 1
    )
    assert samples[("asynctask_worker_tasks_in_flight", (q,))] == 0


@pytest.mark.parametrize("steps", [0, 1], ids=["no-progress", "a-progress-report"])
def test_a_task_that_ends_within_the_start_window_sends_only_its_end_with_its_start_time(
    url: str, broker: BrokerClient, tmp_path: Path, steps: int
) -> None:
    # The longest window (0.5 s), so that a loaded machine cannot stretch a short task past
    # it (one progress report is followed by 0.05 s of sleep: the progress is held with the
    # start, and dropped with it when the end comes first).
    with running_worker(url, start_report_seconds=0.5):
        ref = broker.publish_task("it-run", {"dir": str(tmp_path), "steps": steps})
        end = broker.terminal(ref)
    assert broker.statuses(ref) == [end] and end.seq == 0  # no Processing: one message
    assert end.phase is Phase.SUCCEEDED
    assert end.started_at is not None and end.started_at <= end.at


def test_a_task_still_running_when_its_window_ends_is_reported_with_its_real_start(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    with running_worker(url, start_report_seconds=0.5):
        ref = broker.publish_task("it-run", {"dir": str(tmp_path), "seconds": 1.5})
        start = broker.wait_status(ref, lambda s: s.phase is Phase.PROCESSING, "Processing")
        started = float((tmp_path / f"{ref.uid}.1.began-at").read_text())
        end = broker.terminal(ref)
    assert broker.statuses(ref) == [start, end] and (start.seq, end.seq) == (0, 1)
    # Sent 0.5 s after the handler began, it carries the handler's start, not the send's
    # time: stamped before the handler's first line.
    assert start.at.timestamp() <= started
    assert end.started_at is None  # its start was reported


def test_a_window_of_zero_reports_every_start_at_once(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    with running_worker(url, start_report_seconds=0):
        ref = broker.publish_task("it-run", {"dir": str(tmp_path)})
        end = broker.terminal(ref)
    assert [s.phase for s in broker.statuses(ref)] == [Phase.PROCESSING, Phase.SUCCEEDED]
    assert end.started_at is None
