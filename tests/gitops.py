"""What GitOps tools say about AsyncTasks, computed by the tools' own code.

``gitops-health`` (hack/gitops/, built once from pinned Go modules and cached) runs
kstatus's ``status.Compute`` from sigs.k8s.io/cli-utils, which Flux waits on, and Argo CD's
health check in gopher-lua, the Lua 5.1 interpreter Argo CD embeds, set up as Argo CD sets
up a check from argocd-cm. Each answer is ``{"status": ..., "message": ...}``.
"""

from __future__ import annotations

import functools
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "hack" / "gitops" / "build.sh"
HEALTH_LUA = REPO / "deploy" / "argocd" / "asynctask.dev" / "AsyncTask" / "health.lua"

Verdict = dict[str, str]


@functools.cache
def binary() -> str:
    """The gitops-health binary (hack/gitops/build.sh: built on first use, then cached)."""
    proc = subprocess.run(
        ["bash", str(BUILD)], stdout=subprocess.PIPE, text=True, check=False, timeout=1800
    )
    assert proc.returncode == 0, "building gitops-health failed (see its output above)"
    return str(Path(proc.stdout.strip().splitlines()[-1]) / "gitops-health")


def _run(args: Sequence[str], objects: Sequence[dict[str, Any]]) -> list[Verdict]:
    proc = subprocess.run(
        [binary(), *args],
        input=json.dumps(list(objects)),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"gitops-health {' '.join(args)}: {proc.stderr}"
    verdicts: list[Verdict] = json.loads(proc.stdout)
    assert len(verdicts) == len(objects)
    return verdicts


def kstatus(*objects: dict[str, Any]) -> list[Verdict]:
    """kstatus (Flux): InProgress, Current, Failed, Terminating or Unknown, per object."""
    return _run(["kstatus"], objects)


def argocd(*objects: dict[str, Any], script: Path = HEALTH_LUA) -> list[Verdict]:
    """Argo CD's health (Progressing, Healthy, Degraded, ...) from ``script``, per object;
    a script that fails to run fails the call, with the interpreter's error."""
    return _run(["argocd", str(script)], objects)


def argocd_error(obj: dict[str, Any], script: Path) -> str:
    """The interpreter's error for a script that cannot run in Argo CD (for tests that
    prove the interpreter is the one Argo CD embeds); empty if it ran."""
    proc = subprocess.run(
        [binary(), "argocd", str(script)],
        input=json.dumps(obj),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stderr if proc.returncode != 0 else ""
