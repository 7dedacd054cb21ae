"""An upgrade with a task in flight: the CRD of the previous release, then the packaged
chart's CRD and ``helm upgrade``, as docs/releasing.md tells users to upgrade. The task
created under the previous CRD still validates and finishes under the new operator.

Runs last in this folder (by its name): it replaces the operator's pod.
"""

from __future__ import annotations

import json
import tarfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.incluster.conftest import NAMESPACE, RELEASE, InCluster

PREVIOUS_CRD = Path(__file__).parent / "fixtures" / "crd-previous.yaml"
CRD_NAME = "asynctasks.asynctask.dev"


def _crd(incluster: InCluster, *args: str) -> None:
    incluster.cp.kubectl(*args)
    incluster.cp.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")


def _operator_pod(incluster: InCluster) -> str:
    (pod,) = incluster.pods("operator")
    name: str = pod["metadata"]["name"]
    return name


def _apply_packaged_crd(incluster: InCluster, workdir: Path) -> None:
    """``tar -xzf asynctask-<version>.tgz asynctask/crds`` and a server-side apply."""
    with tarfile.open(incluster.chart) as chart:
        members = [m for m in chart.getmembers() if m.name.startswith("asynctask/crds/")]
        assert members, "the chart package holds no CRD"
        chart.extractall(workdir, members=members, filter="data")
    _crd(
        incluster,
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        str(workdir / "asynctask/crds"),
    )


def _still_valid(incluster: InCluster, name: str) -> None:
    """The object as stored, written again (dry run) under the new CRD's validation."""
    stored: dict[str, Any] = incluster.get("asynctask", name)
    proc = incluster.kubectl(
        "replace", "--dry-run=server", "-f", "-", input=json.dumps(stored), check=False
    )
    assert proc.returncode == 0, proc.stderr


def test_a_task_in_flight_finishes_after_an_upgrade_from_the_previous_crd(
    incluster: InCluster, tmp_path: Path
) -> None:
    _crd(incluster, "replace", "-f", str(PREVIOUS_CRD))
    incluster.submit("upgraded", "hello", {"name": "upgrade", "steps": 20, "step_seconds": 1.0})
    seen = incluster.wait_phase("upgraded", {"Processing"}, timeout=120)
    assert seen["status"].get("progress", 0) < 50, seen["status"]
    before = _operator_pod(incluster)

    _apply_packaged_crd(incluster, tmp_path)
    began = datetime.now(UTC)
    incluster.helm(
        "upgrade", RELEASE, str(incluster.chart), "--namespace", NAMESPACE, "--reuse-values",
        "--set-string", f"operator.podAnnotations.upgraded={time.time_ns()}",
        "--wait", "--timeout", "5m",
    )  # fmt: skip
    after = incluster.wait_for(
        "the new operator pod",
        lambda: (lambda pods: pods[0]["metadata"]["name"] if len(pods) == 1 else None)(
            incluster.pods("operator")
        ),
    )
    assert after != before, "helm upgrade did not replace the operator's pod"

    done = incluster.wait_phase(
        "upgraded", {"Succeeded", "Failed", "Error", "TimedOut", "Cancelled"}
    )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["result"] == {"greeting": "Hello, upgrade!", "steps": 20}
    # It was in flight across the upgrade: the previous operator (stopped first: the chart's
    # Deployment recreates) could not have ended it.
    ended = datetime.fromisoformat(done["status"]["completionTime"].replace("Z", "+00:00"))
    assert ended > began, (ended, began)
    _still_valid(incluster, "upgraded")
    served = incluster.cp.kubectl("get", f"crd/{CRD_NAME}", "-o", "json").stdout
    assert json.loads(served)["spec"]["versions"][0]["name"] == "v1alpha1"
