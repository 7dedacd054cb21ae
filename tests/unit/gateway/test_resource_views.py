"""The schedule and queue views, and the task a manual trigger makes (pure; shared by the
gateway and the client)."""

from __future__ import annotations

from asynctask_worker.resource_views import manual_task, queue_view, schedule_view

SCHEDULE = {
    "metadata": {
        "name": "nightly",
        "namespace": "team-a",
        "uid": "s-1",
        "resourceVersion": "7",
        "creationTimestamp": "2026-12-01T00:00:00Z",
    },
    "spec": {
        "schedule": "0 3 * * *",
        "timeZone": "Europe/Berlin",
        "suspend": True,
        "template": {
            "metadata": {"labels": {"kind": "report"}, "annotations": {"note": "n"}},
            "spec": {"queue": "reports", "request": {"day": 1}},
        },
    },
    "status": {
        "nextScheduleTime": "2026-12-06T02:00:00Z",
        "lastScheduleTime": "2026-12-05T02:00:00Z",
        "active": [{"name": "nightly-1764900000", "uid": "t-1"}, {"uid": "no-name"}],
        "conditions": [
            {"type": "Other", "status": "True"},
            {"type": "Ready", "status": "False", "reason": "InvalidTimeZone", "message": "m"},
        ],
    },
}


def test_a_schedule_view_has_its_timing_policy_runs_and_ready_condition() -> None:
    view = schedule_view(SCHEDULE)
    assert (view.name, view.namespace, view.queue) == ("nightly", "team-a", "reports")
    assert view.schedule == "0 3 * * *" and view.interval_seconds is None
    assert view.suspend and view.concurrency_policy == "Allow"  # the CRD's default
    assert view.next_schedule_time == "2026-12-06T02:00:00Z"
    assert [a.name for a in view.active] == ["nightly-1764900000"]
    assert view.ready is not None and view.ready.reason == "InvalidTimeZone"
    wire = view.to_json()
    assert wire["timeZone"] == "Europe/Berlin" and wire["resourceVersion"] == "7"


def test_a_new_schedule_without_status_reads_as_not_yet_scheduled() -> None:
    view = schedule_view({"metadata": {"name": "n", "namespace": "ns"}, "spec": {}})
    assert view.ready is None and view.next_schedule_time is None and view.active == []


def test_a_queue_view_reads_policy_and_counts_and_a_rate_written_as_text() -> None:
    view = queue_view(
        {
            "metadata": {"name": "emails", "resourceVersion": "3"},
            "spec": {"paused": True, "maxInFlight": 5, "rateLimit": {"perSecond": 2.5}},
            "status": {
                "held": 12,
                "inFlight": "5",
                "ready": 1,
                "consumers": 2,
                "startRate": "1.5",
                "oldestHeldTime": "2026-12-05T10:00:00Z",
                "conditions": [{"type": "Paused", "status": "True", "reason": "Paused"}],
            },
        }
    )
    assert view.paused and view.max_in_flight == 5
    assert view.rate_limit is not None and view.rate_limit.per_second == 2.5
    assert (view.held, view.in_flight, view.ready, view.consumers) == (12, 5, 1, 2)
    assert view.start_rate == 1.5
    assert [c.type for c in view.conditions] == ["Paused"]
    bare = queue_view({"metadata": {"name": "q"}, "status": {"startRate": "n/a"}})
    assert bare.start_rate is None and bare.rate_limit is None and bare.held == 0


def test_a_manual_trigger_is_the_template_named_labelled_and_owned_by_the_schedule() -> None:
    task = manual_task(SCHEDULE, {"asynctask.dev/created-by": "alice"})
    meta = task["metadata"]
    assert task["kind"] == "AsyncTask"
    assert meta["generateName"] == "nightly-manual-" and "name" not in meta
    assert meta["namespace"] == "team-a"
    assert meta["labels"] == {"kind": "report", "asynctask.dev/schedule": "nightly"}
    assert meta["annotations"] == {
        "note": "n",
        "asynctask.dev/created-by": "alice",
        "asynctask.dev/triggered-by": "manual",
    }
    (owner,) = meta["ownerReferences"]
    assert owner == {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncTaskSchedule",
        "name": "nightly",
        "uid": "s-1",
        "controller": True,
    }
    assert task["spec"] == {"queue": "reports", "request": {"day": 1}}


def test_each_route_names_the_resource_and_verbs_its_review_asks_for() -> None:
    from asynctask_gateway.routes import BY_NAME

    assert BY_NAME["getTask"].access() == (("asynctasks", "get", True),)
    assert BY_NAME["listSchedules"].access() == (("asynctaskschedules", "list", False),)
    assert BY_NAME["triggerSchedule"].access() == (
        ("asynctaskschedules", "get", True),
        ("asynctasks", "create", False),
    )
    assert BY_NAME["pauseQueue"].access() == (("asyncqueues", "patch", True),)
    assert BY_NAME["pauseQueue"].scope == "cluster" and BY_NAME["getSchedule"].scope == "namespaced"
