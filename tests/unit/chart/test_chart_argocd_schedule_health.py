"""The Argo CD health check of AsyncTaskSchedule (deploy/argocd/asynctask.dev/AsyncTaskSchedule)
on every case of its health_test.yaml, in gopher-lua (the interpreter Argo CD embeds, with
its libraries) and in lua5.4; and kstatus (Flux) on the same samples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests import gitops
from tests.unit.chart.test_chart_argocd_health import REPO, run_check

CHECK = REPO / "deploy" / "argocd" / "asynctask.dev" / "AsyncTaskSchedule"
KSTATUS = {
    "new": "InProgress",
    "edited": "InProgress",
    "ready": "Current",
    "suspended": "Current",
    "invalid": "Failed",
}


def cases() -> list[dict[str, Any]]:
    data = yaml.safe_load((CHECK / "health_test.yaml").read_text())
    return list(data["tests"])


@pytest.mark.parametrize("case", cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_schedule_health_case_in_gopher_lua(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert gitops.argocd(obj, script=CHECK / "health.lua") == [case["healthStatus"]]


@pytest.mark.parametrize("case", cases(), ids=lambda c: Path(c["inputPath"]).stem)
def test_schedule_health_case_in_lua54(case: dict[str, Any], tmp_path: Path) -> None:
    obj = yaml.safe_load((CHECK / case["inputPath"]).read_text())
    assert run_check(obj, tmp_path, CHECK / "health.lua") == case["healthStatus"]


def test_kstatus_of_every_schedule_sample() -> None:
    samples = sorted((CHECK / "testdata").glob("*.yaml"))
    verdicts = gitops.kstatus(*(yaml.safe_load(p.read_text()) for p in samples))
    assert {p.stem: v["status"] for p, v in zip(samples, verdicts, strict=True)} == KSTATUS
