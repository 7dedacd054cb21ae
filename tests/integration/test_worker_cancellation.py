"""Cancellation and time limits against the real RabbitMQ: control stream, grace, hard stop."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

import pytest

from asynctask_worker import Phase
from testbed import wait_until
from tests.integration.worker_harness import (
    BrokerClient,
    markers,
    pid_alive,
    running_worker,
)

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("queue", ["it-run", "it-async"])
def test_a_running_handler_is_told_and_stops(
    url: str, broker: BrokerClient, tmp_path: Path, queue: str
) -> None:
    # The grace period is 30 s: a Cancelled status well before means the handler stopped
    # by itself: the sync one saw ctx.cancelled, the async one got CancelledError.
    with running_worker(url, cancel_grace_seconds=30):
        ref = broker.publish_task(queue, {"dir": str(tmp_path), "seconds": 120})
        wait_until("the handler to start", lambda: bool(markers(tmp_path, ref, "started")), 20)
        cancelled_at = time.monotonic()
        broker.publish_control("cancel", ref)
        wait_until(
            "the handler to see the cancellation",
            lambda: bool(markers(tmp_path, ref, "cancel-seen")),
            timeout=20,
        )
        told_after = time.monotonic() - cancelled_at
        end = broker.terminal(ref, timeout=20)
    assert end.phase is Phase.CANCELLED and end.error is not None
    assert end.error.reason == "Cancelled"
    assert markers(tmp_path, ref, "cancel-seen")[0].read_text() == "Cancelled"
    assert told_after < 10, f"the handler was told {told_after:.1f}s after the cancel"
    assert broker.ready(queue) == 0


def test_a_task_cancelled_while_queued_never_runs_even_on_a_worker_started_later(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    ref = broker.publish_task("it-run", {"dir": str(tmp_path)})
    broker.publish_control("cancel", ref)
    # No worker was running: the new one learns it from the control stream's history.
    with running_worker(url):
        end = broker.terminal(ref)
        fine = broker.publish_task("it-run", {"dir": str(tmp_path)})
        assert broker.terminal(fine).phase is Phase.SUCCEEDED
    assert end.phase is Phase.CANCELLED and end.error is not None
    assert "before it started" in end.error.message
    assert [s.phase for s in broker.statuses(ref)] == [Phase.CANCELLED]  # never Processing
    assert not markers(tmp_path, ref, "started")
    assert broker.ready("it-run") == 0  # acked


def test_a_task_cancelled_while_waiting_for_a_slot_never_runs(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    """One slot, two deliveries held (prefetch 2): the second waits in the worker for the
    slot; its cancellation takes it out of the wait, reported while the first still runs."""
    release = tmp_path / "release"
    with running_worker(url, concurrency=1, prefetch=2) as worker:
        blocker = broker.publish_task("it-run", {"dir": str(tmp_path), "until_file": str(release)})
        wait_until(
            "the first task to start", lambda: bool(markers(tmp_path, blocker, "started")), 20
        )
        waiting = broker.publish_task("it-run", {"dir": str(tmp_path)})
        wait_until(
            "the second task to wait for the slot", lambda: worker.dispatcher.pending == 1, 20
        )
        broker.publish_control("cancel", waiting)
        end = broker.terminal(waiting)  # while the blocker holds the only slot
        assert worker.dispatcher.pending == 0
        assert not markers(tmp_path, blocker, "ended")  # the blocker still runs
        release.touch()
        assert broker.terminal(blocker).phase is Phase.SUCCEEDED
    assert end.phase is Phase.CANCELLED
    assert not markers(tmp_path, waiting, "started")
    assert broker.ready("it-run") == 0


def test_the_time_limit_ends_a_task_as_timed_out(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    with running_worker(url, cancel_grace_seconds=30):
        ref = broker.publish_task(
            "it-run", {"dir": str(tmp_path), "seconds": 120}, timeout_seconds=1
        )
        end = broker.terminal(ref, timeout=20)
    assert end.phase is Phase.TIMED_OUT and end.error is not None
    assert end.error.reason == "TimeLimitExceeded"
    assert markers(tmp_path, ref, "cancel-seen")[0].read_text() == "TimedOut"


@pytest.mark.parametrize(
    ("action", "phase"), [("cancel", Phase.CANCELLED), ("timeout", Phase.TIMED_OUT)]
)
def test_process_pool_kills_a_handler_that_does_not_stop(
    url: str,
    broker: BrokerClient,
    tmp_path: Path,
    action: Literal["cancel", "timeout"],
    phase: Phase,
) -> None:
    with running_worker(url, pool="process", cancel_grace_seconds=0.5):
        ref = broker.publish_task(
            "it-run", {"dir": str(tmp_path), "seconds": 120, "cooperative": False}
        )
        wait_until("the handler to start", lambda: bool(markers(tmp_path, ref, "started")), 20)
        pid = int(markers(tmp_path, ref, "started")[0].read_text())
        assert pid != os.getpid() and pid_alive(pid)
        broker.publish_control(action, ref)
        end = broker.terminal(ref, timeout=20)
        wait_until("the task's process to be gone", lambda: not pid_alive(pid), timeout=10)
    assert end.phase is phase
    assert not markers(tmp_path, ref, "ended")  # killed: its `finally` never ran
    assert broker.ready("it-run") == 0
