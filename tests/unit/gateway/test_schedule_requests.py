"""A schedule's POST body and the AsyncTaskSchedule it becomes (pure)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from asynctask_gateway.schedule_requests import ScheduleRequest, schedule_manifest


def body(**more: Any) -> dict[str, Any]:
    return {"name": "nightly", "template": {"spec": {"queue": "reports"}}, **more}


def test_a_cron_schedule_becomes_the_crd_object_with_only_what_was_given() -> None:
    req = ScheduleRequest.parse(
        body(
            schedule="0 3 * * 1-5",
            timeZone="Europe/Berlin",
            concurrencyPolicy="Forbid",
            labels={"team": "a"},
            template={
                "metadata": {"labels": {"kind": "report"}},
                "spec": {"queue": "reports", "retries": 2.0, "request": {"day": 1}},
            },
        )
    )
    obj = schedule_manifest(req, "team-a", user="alice")
    assert obj["kind"] == "AsyncTaskSchedule" and obj["apiVersion"] == "asynctask.dev/v1alpha1"
    assert obj["metadata"] == {
        "name": "nightly",
        "namespace": "team-a",
        "annotations": {"asynctask.dev/created-by": "alice"},
        "labels": {"team": "a"},
    }
    assert obj["spec"] == {
        "schedule": "0 3 * * 1-5",
        "timeZone": "Europe/Berlin",
        "concurrencyPolicy": "Forbid",
        "template": {
            "metadata": {"labels": {"kind": "report"}, "annotations": {}},
            "spec": {"queue": "reports", "retries": 2, "request": {"day": 1}},
        },
    }


def test_an_interval_schedule_takes_integral_numbers_as_integers() -> None:
    req = ScheduleRequest.parse(body(intervalSeconds=30.0, suspend=True))
    spec = schedule_manifest(req, "ns", user="u")["spec"]
    assert spec["intervalSeconds"] == 30 and isinstance(spec["intervalSeconds"], int)
    assert spec["suspend"] is True


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (body(), ""),  # neither cron nor interval
        (body(schedule="* * * * *", intervalSeconds=5), ""),  # both
        (body(intervalSeconds=5, timeZone="UTC"), ""),  # a zone without cron
        (body(intervalSeconds=0), "intervalSeconds"),
        (body(schedule="every day"), "schedule"),
        (body(intervalSeconds=5, concurrencyPolicy="Sometimes"), "concurrencyPolicy"),
        (body(intervalSeconds=5, name="x" * 53), "name"),
        (body(intervalSeconds="5"), "intervalSeconds"),  # a string is not a number
        ({**body(intervalSeconds=5), "template": {"spec": {"queue": "q", "cancel": True}}}, "c"),
        ({**body(intervalSeconds=5), "template": {"spec": {"queue": "q", "notBefore": "x"}}}, "n"),
        ({**body(intervalSeconds=5), "template": {"spec": {"queue": "q"}, "x": 1}}, "template"),
        ({**body(intervalSeconds=5), "startingDeadlineSeconds": -1}, "starting"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(bad: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as refused:
        ScheduleRequest.parse(bad)
    locations = [".".join(str(p) for p in e["loc"]) for e in refused.value.errors()]
    assert any(field in loc for loc in locations), locations


def test_a_template_spec_is_a_task_body_without_name_labels_cancel_and_not_before() -> None:
    fields = set(ScheduleRequest.model_json_schema()["$defs"]["TemplateSpec"]["properties"])
    assert {"queue", "request", "timeoutSeconds", "retries", "webhook"} <= fields
    assert not fields & {"name", "labels", "cancel", "notBefore"}
