"""The operator's Prometheus endpoint, scraped while the shared operator runs tasks."""

from __future__ import annotations

import pytest

from testbed import ControlPlane, wait_until
from tests.e2e.system import Process
from tests.e2e.tasks import create, sample, scrape, wait_phase

pytestmark = pytest.mark.e2e


def test_metrics_count_what_the_operator_did(
    control_plane: ControlPlane, namespace: str, operator: Process, worker: Process
) -> None:
    before = scrape(operator.env)
    create(control_plane, namespace, "counted", queue="hello", request={"steps": 2})
    create(control_plane, namespace, "broken", queue="always-fails", request={})
    wait_phase(control_plane, namespace, "counted", "Succeeded")
    wait_phase(control_plane, namespace, "broken", "Error")

    def delta(name: str, **labels: str) -> float:
        return sample(scrape(operator.env), name, **labels) - sample(before, name, **labels)

    def status_writes() -> int:
        """Status PATCHes the apiserver answered with 200 for this namespace (its audit
        log): three for a task written phase by phase, two for one whose start and end
        came together and were folded into one write, one for a task that ended within
        the publish fold window (its Pending written with its end)."""
        return len(
            [
                w
                for w in control_plane.writes(namespace)
                if w["subresource"] == "status" and w["code"] == 200
            ]
        )

    wait_until(
        "the writes to be counted",
        lambda: (
            status_writes() >= 2  # each task's end at least
            and delta("asynctask_operator_status_writes_total", result="ok") >= status_writes()
        ),
        10,
    )
    assert delta("asynctask_operator_tasks_published_total", queue="hello") == 1
    assert delta("asynctask_operator_tasks_published_total", queue="always-fails") == 1
    assert (
        delta("asynctask_operator_phase_transitions_total", queue="hello", phase="Succeeded") == 1
    )
    assert (
        delta("asynctask_operator_phase_transitions_total", queue="always-fails", phase="Error")
        == 1
    )
    assert delta("asynctask_operator_task_run_seconds_count", queue="hello", phase="Succeeded") == 1
    assert delta("asynctask_operator_task_wait_seconds_count", queue="hello") == 1
    # counted: its Processing (it runs 0.4 s, past the worker's start window) and its end;
    # broken: its Error, alone when it ended within the start window (with started_at), or
    # after its Processing. Progress in between may be coalesced rather than applied.
    assert delta("asynctask_operator_status_messages_total", result="applied") >= 3
    # A task whose Pending was folded into its end made one write; the others three.
    folded = delta("asynctask_operator_records_folded_total")
    print(f"\nstatus writes: {status_writes()} for 2 tasks, {folded:.0f} folded into the end")
    assert status_writes() in range(2, 7)
    now = scrape(operator.env)
    # Both tasks still exist, so both are held (other tests' tasks come and go meanwhile,
    # as their namespaces are deleted: a difference from `before` would race with them).
    assert sample(now, "asynctask_operator_tasks_tracked") >= 2
    assert "asynctask_operator_deadlines_pending" in {name for name, _ in now}
