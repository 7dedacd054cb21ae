"""The Argo CD health check of AsyncQueue (deploy/argocd/asynctask.dev/AsyncQueue/) on every
case of its health_test.yaml, in gopher-lua (Argo CD's interpreter) and in lua5.4, and what
kstatus (Flux) computes for the same samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import gitops
from tests.unit.chart.test_chart_argocd_health import run_check

REPO = Path(__file__).resolve().parents[3]
CHECK = REPO / "deploy" / "argocd" / "asynctask.dev" / "AsyncQueue"
CRD = REPO / "deploy" / "crds" / "asynctask.dev_asyncqueues.yaml"
KSTATUS = {  # sample -> what kstatus (Flux) computes, as docs/queues.md states it
    "new": "InProgress",  # no status yet
    "changed": "InProgress",  # the status is of an older generation
    "saturated": "Current",
    "paused": "Current",  # paused on purpose: the object is what its manifest says
    "invalid": "InProgress",  # Ready=False
}


def cases() -> list[dict[str, Any]]:
    return list(yaml.safe_load((CHECK / "health_test.yaml").read_text())["tests"])


@pytest.mark.parametrize("case", cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_queue_health_case_in_gopher_lua(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert gitops.argocd(obj, script=CHECK / "health.lua") == [case["healthStatus"]]


@pytest.mark.parametrize("case", cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_queue_health_case_in_lua54(case: dict[str, Any], tmp_path: Path) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert run_check(obj, tmp_path, CHECK / "health.lua") == case["healthStatus"]


def test_kstatus_of_every_queue_sample() -> None:
    samples = sorted((CHECK / "testdata").glob("*.yaml"))
    verdicts = gitops.kstatus(*(yaml.safe_load(p.read_text()) for p in samples))
    assert {p.stem: v["status"] for p, v in zip(samples, verdicts, strict=True)} == KSTATUS


def test_every_queue_sample_uses_only_declared_fields() -> None:
    schema = yaml.safe_load(CRD.read_text())["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def unknown(value: Any, sub: dict[str, Any], path: str) -> list[str]:
        if isinstance(value, list) and "items" in sub:
            return [
                u for i, v in enumerate(value) for u in unknown(v, sub["items"], f"{path}[{i}]")
            ]
        if not isinstance(value, dict) or "properties" not in sub:
            return []
        out = []
        for key, v in value.items():
            if key not in sub["properties"]:
                out.append(f"{path}.{key}")
            else:
                out += unknown(v, sub["properties"][key], f"{path}.{key}")
        return out

    samples = sorted((CHECK / "testdata").glob("*.yaml"))
    assert {f"testdata/{p.name}" for p in samples} == {c["inputPath"] for c in cases()}
    for sample in samples:
        obj = yaml.safe_load(sample.read_text())
        assert obj["kind"] == "AsyncQueue"
        obj.pop("metadata")
        assert unknown(obj, schema, "") == [], sample.name
