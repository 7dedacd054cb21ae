"""The AsyncTaskSchedule CRD: the contract's names, every field described, printer columns,
and its task template kept in step with the AsyncTask CRD's spec schema."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

from tests.unit.test_crd import walk

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"
SCHEDULE_CRD = CRDS / "asynctask.dev_asynctaskschedules.yaml"
TASK_CRD = CRDS / "asynctask.dev_asynctasks.yaml"


def schema(path: Path) -> dict[str, Any]:
    crd: dict[str, Any] = yaml.safe_load(path.read_text())
    root: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return root


def test_names_scope_and_status_subresource_are_the_contracts() -> None:
    crd = yaml.safe_load(SCHEDULE_CRD.read_text())
    spec = crd["spec"]
    assert crd["metadata"]["name"] == "asynctaskschedules.asynctask.dev"
    assert spec["group"] == "asynctask.dev" and spec["scope"] == "Namespaced"
    assert spec["names"] == {
        "kind": "AsyncTaskSchedule",
        "listKind": "AsyncTaskScheduleList",
        "plural": "asynctaskschedules",
        "singular": "asynctaskschedule",
        "shortNames": ["atsched"],
    }
    (version,) = spec["versions"]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    plain = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert plain == ["Schedule", "Interval", "Suspend", "Active", "Last-Schedule", "Next", "Age"]
    wide = [c["name"] for c in version["additionalPrinterColumns"] if c.get("priority")]
    assert wide == ["TimeZone", "Ready"]


def test_no_crd_but_the_tasks_is_in_the_asynctask_category() -> None:
    """kubectl expands a category before a resource name: were a second kind in the
    category "asynctask", `kubectl get asynctask NAME` would ask for two resources and
    fail ("you must specify only one resource"), as it did with this CRD in that category."""
    members = [
        crd["spec"]["names"]["kind"]
        for crd in (yaml.safe_load(p.read_text()) for p in sorted(CRDS.glob("*.yaml")))
        if "asynctask" in crd["spec"]["names"].get("categories", [])
    ]
    assert members == ["AsyncTask"]


def test_every_field_has_a_description() -> None:
    assert walk(schema(SCHEDULE_CRD), "") == []


def test_the_template_spec_is_the_task_spec_without_cancel_not_before_and_immutability() -> None:
    """The template's spec is the AsyncTask spec's schema, field for field: change one
    without the other and this fails. Left out: cancel and notBefore (a schedule's task is
    neither), requestRef (a stored request belongs to one task, and goes with it: a
    schedule's runs would share it), the immutability rules (transition rules: a template
    may be edited) and the description."""
    task = copy.deepcopy(schema(TASK_CRD)["properties"]["spec"])
    template = copy.deepcopy(
        schema(SCHEDULE_CRD)["properties"]["spec"]["properties"]["template"]["properties"]["spec"]
    )
    task.pop("x-kubernetes-validations")
    for dropped in ("cancel", "notBefore", "requestRef"):
        task["properties"].pop(dropped)
    task.pop("description")
    template.pop("description")
    assert template == task


def test_the_name_limit_leaves_room_for_the_slot_suffix() -> None:
    """<name>-<unix seconds>: 52 + 1 + 10 digits = 63, a valid label value too."""
    rules = schema(SCHEDULE_CRD)["x-kubernetes-validations"]
    assert [r["rule"] for r in rules] == ["self.metadata.name.size() <= 52"]


def cron_pattern() -> re.Pattern[str]:
    schedule = schema(SCHEDULE_CRD)["properties"]["spec"]["properties"]["schedule"]
    (rule,) = schedule["x-kubernetes-validations"]
    found = re.fullmatch(r"self\.matches\('(.*)'\)", rule["rule"])
    assert found
    return re.compile(found.group(1))


def test_the_cron_rule_takes_five_fields_or_a_macro() -> None:
    pattern = cron_pattern()
    for good in ("* * * * *", "*/15 0-6 1,15 JAN-MAR MON-FRI", "0 3 * * 1-5", "@hourly", "@daily"):
        assert pattern.fullmatch(good), good
    for bad in ("* * * *", "* * * * * *", "@reboot", "@every 5s", "", "* * * * * ;"):
        assert not pattern.fullmatch(bad), bad
