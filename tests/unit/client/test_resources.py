"""Schedules and queues in the client: the gateway body a manifest becomes, what a manifest
must be, and what the CLI prints (pure)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from asynctask_client import cli, render
from asynctask_client.transport import check_schedule, schedule_body, spec_of
from asynctask_worker.resource_views import queue_view, schedule_view

MANIFEST = {
    "apiVersion": "asynctask.dev/v1alpha1",
    "kind": "AsyncTaskSchedule",
    "metadata": {"name": "nightly", "labels": {"team": "a"}, "annotations": {"x": "y"}},
    "spec": {"schedule": "0 3 * * *", "template": {"spec": {"queue": "reports"}}},
}
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_a_manifest_becomes_the_gateways_body_name_and_labels_beside_the_spec() -> None:
    assert schedule_body(MANIFEST) == {
        "name": "nightly",
        "labels": {"team": "a"},
        "schedule": "0 3 * * *",
        "template": {"spec": {"queue": "reports"}},
    }


def test_only_a_named_schedule_of_the_clients_namespace_is_accepted() -> None:
    assert check_schedule(MANIFEST, "team-a") == MANIFEST
    for bad, words in (
        ({**MANIFEST, "kind": "AsyncTask"}, "kind AsyncTaskSchedule"),
        ({**MANIFEST, "metadata": {}}, "metadata.name"),
        ({**MANIFEST, "metadata": {"name": "n", "namespace": "other"}}, "not the client's"),
        ("text", "kind AsyncTaskSchedule"),
    ):
        with pytest.raises(ValueError, match=words):
            check_schedule(bad, "team-a")


def test_submit_priority_is_the_specs() -> None:
    assert spec_of("q", {}, priority=-5)["priority"] == -5
    assert "priority" not in spec_of("q", {})
    args = cli.parser().parse_args(["submit", "q", "--priority", "9"])
    assert args.priority == 9


def test_the_schedule_table_reads_like_kubectl_get() -> None:
    views = [
        schedule_view(
            {
                "metadata": {"name": "nightly", "namespace": "ns"},
                "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Berlin", "suspend": True},
                "status": {
                    "lastScheduleTime": "2026-12-05T10:00:00Z",
                    "nextScheduleTime": "2026-12-06T02:00:00Z",
                    "active": [{"name": "a"}],
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        ),
        schedule_view(
            {
                "metadata": {"name": "often", "namespace": "ns"},
                "spec": {"intervalSeconds": 30},
                "status": {
                    "conditions": [{"type": "Ready", "status": "False", "reason": "Invalid"}]
                },
            }
        ),
    ]
    lines = render.schedule_table(views, NOW).splitlines()
    assert lines[0].split() == [
        "NAME",
        "SCHEDULE",
        "SUSPEND",
        "ACTIVE",
        "LAST-SCHEDULE",
        "NEXT",
        "READY",
    ]
    assert "0 3 * * * (Europe/Berlin)" in lines[1] and " true " in lines[1]
    assert "2h" in lines[1] and "2026-12-06T02:00:00Z" in lines[1]
    assert "every 30s" in lines[2] and "<none>" in lines[2] and lines[2].endswith("False: Invalid")
    details = render.schedule_details(views[0])
    assert "asynctask list -l asynctask.dev/schedule=nightly" in details


def test_the_queue_table_and_details_show_counts_and_policy() -> None:
    view = queue_view(
        {
            "metadata": {"name": "emails"},
            "spec": {"paused": True, "maxInFlight": 5, "rateLimit": {"perSecond": 2, "burst": 4}},
            "status": {"held": 12, "inFlight": 5, "startRate": "1.5"},
        }
    )
    header, row = render.queue_table([view]).splitlines()
    assert header.split()[:4] == ["NAME", "PAUSED", "HELD", "IN-FLIGHT"]
    assert row.split() == ["emails", "true", "12", "5", "0", "0", "1.5/s", "5"]
    details = render.queue_details(view)
    assert "Rate limit:     2/s burst 4" in details and "Conditions:   <none>" in details


def test_describe_shows_the_priority_and_why_a_pending_task_is_held() -> None:
    from asynctask_client.transport import Details
    from asynctask_worker.views import task_view

    view = task_view(
        {
            "metadata": {"name": "t", "namespace": "ns"},
            "spec": {"queue": "q", "priority": 40},
            "status": {"phase": "Pending", "reason": "RateLimited", "message": "m"},
        }
    )
    text = render.describe(Details(view), NOW)
    assert "Priority:     40" in text and "Held:         RateLimited" in text
