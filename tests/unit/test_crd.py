"""The CRD teaches its API: every field described, structural, the printer columns right."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

CRD = Path(__file__).resolve().parents[2] / "deploy" / "crds" / "asynctask.dev_asynctasks.yaml"


def load() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(CRD.read_text())
    return data


def walk(schema: dict[str, Any], path: str) -> list[str]:
    missing = [] if "description" in schema or path in ("", ".metadata") else [path]
    for name, sub in (schema.get("properties") or {}).items():
        missing += walk(sub, f"{path}.{name}")
    if "items" in schema:
        missing += walk(schema["items"], f"{path}[]")
    return missing


def test_every_field_has_a_description() -> None:
    version = load()["spec"]["versions"][0]
    assert walk(version["schema"]["openAPIV3Schema"], "") == []


def test_names_scope_and_status_subresource() -> None:
    spec = load()["spec"]
    assert spec["group"] == "asynctask.dev" and spec["scope"] == "Namespaced"
    assert spec["names"]["plural"] == "asynctasks" and "atask" in spec["names"]["shortNames"]
    assert "asynctask" in spec["names"]["categories"]
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert columns == ["Queue", "Phase", "Progress", "Age"]


def test_phase_enum_matches_the_wire_contract() -> None:
    from asynctask_worker.messages import Phase

    status = load()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["properties"]["phase"]["enum"] == [p.value for p in Phase]


def test_status_defaults_to_observed_generation_zero_and_nothing_else() -> None:
    """A task no operator has seen yet reads as in progress to kstatus (observedGeneration 0
    < generation 1), from the apiserver's defaults alone. Nothing else is defaulted: no
    phase (no phase means the operator never queued the task), no conditions (kubectl
    wait), nothing a printer column shows."""
    status = load()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["default"] == {}
    defaults = {
        name: prop["default"] for name, prop in status["properties"].items() if "default" in prop
    }
    assert defaults == {"observedGeneration": 0}


QUEUE_CRD = CRD.with_name("asynctask.dev_asyncqueues.yaml")


def load_queue() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(QUEUE_CRD.read_text())
    return data


def test_the_queue_crd_describes_every_field() -> None:
    version = load_queue()["spec"]["versions"][0]
    assert walk(version["schema"]["openAPIV3Schema"], "") == []


def test_the_queue_crd_is_cluster_scoped_with_the_contracts_names() -> None:
    spec = load_queue()["spec"]
    assert spec["group"] == "asynctask.dev" and spec["scope"] == "Cluster"
    names = spec["names"]
    assert (names["plural"], names["singular"], names["kind"]) == (
        "asyncqueues",
        "asyncqueue",
        "AsyncQueue",
    )
    # No category "asynctask": kubectl expands categories before resource names, so a
    # second kind in it would make `kubectl patch asynctask NAME` refuse ("only one resource").
    assert names["shortNames"] == ["aqueue"] and "categories" not in names
    version = spec["versions"][0]
    assert version["name"] == "v1alpha1" and version["subresources"] == {"status": {}}
    columns = [(c["name"], c.get("priority", 0)) for c in version["additionalPrinterColumns"]]
    assert columns == [
        ("Paused", 0),
        ("Held", 0),
        ("In-Flight", 0),
        ("Max-In-Flight", 0),
        ("Rate", 0),
        ("Ready", 0),
        ("Consumers", 0),
        ("Start-Rate", 0),
        ("Oldest-Held", 1),
        ("Age", 0),
    ]


def test_task_priority_is_an_integer_from_minus_100_to_100_defaulting_to_0() -> None:
    spec = load()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    prop = spec["properties"]["priority"]
    assert (prop["type"], prop["minimum"], prop["maximum"], prop["default"]) == (
        "integer",
        -100,
        100,
        0,
    )
    assert "spec.priority is immutable" in spec["x-kubernetes-validations"][0]["messageExpression"]


def immutability() -> tuple[str, list[tuple[str, str]]]:
    """The spec's one transition rule, and its message's (condition, message) pairs."""
    spec = load()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    (rule,) = spec["x-kubernetes-validations"]
    listed = re.fullmatch(r"\((.*)\)\.substring\(2\)", rule["messageExpression"])
    assert listed, rule["messageExpression"]
    pairs = re.findall(r"\(\((.+?)\) \? '' : '; ([^']+)'\)", listed.group(1))
    return rule["rule"], pairs


def test_the_spec_is_immutable_but_cancel_which_cannot_be_undone() -> None:
    """One rule for the spec's immutability (the apiserver evaluates a CRD's rules on every
    write, status writes included, and each field a rule reads costs a lookup in the spec's
    schema: hack/controlplane/celcost). Each field keeps its own check and its own message,
    as when each had a rule: the message lists those of the fields that changed, joined by
    "; " (the CEL ``join`` is refused here: its estimated cost is over the budget). Every
    field is covered but ``request`` (free-form: the admission policy compares it) and
    ``cancel`` (set once, never undone)."""
    rule, pairs = immutability()
    checks = dict((m.split(" ")[0], c) for c, m in pairs)
    spec = load()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert set(checks) == {f"spec.{name}" for name in spec["properties"] if name != "request"}
    assert checks["spec.queue"] == "self.queue == oldSelf.queue"
    for name in set(spec["properties"]) - {"queue", "request", "cancel"}:
        assert checks[f"spec.{name}"] == (
            f"has(self.{name}) == has(oldSelf.{name}) && "
            f"(!has(self.{name}) || self.{name} == oldSelf.{name})"
        )
    assert checks["spec.cancel"] == (
        "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)"
    )
    # The rule is the messages' checks, all of them, behind a fast path: an unchanged
    # spec (every status write) is one comparison, not a lookup per field.
    assert rule == "self == oldSelf || (" + " && ".join(f"({c})" for c, _ in pairs) + ")"


def test_status_is_owned_whole() -> None:
    """The operator replaces the status whole (one JSON patch of ``/status``), so the
    apiserver tracks its ownership whole: an atomic map, whose managedFields entry is
    ``f:status`` alone (round 6 of bench/README.md: a quarter of a status write's CPU)."""
    status = load()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert status["x-kubernetes-map-type"] == "atomic"
