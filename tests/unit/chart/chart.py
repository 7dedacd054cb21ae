"""Helpers of the chart's render tests: the pinned helm binary, renderings, and lookups in
the rendered objects. No cluster: ``helm template`` only."""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "deploy" / "helm" / "asynctask"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM_BUILD = REPO / "hack" / "helm" / "build.sh"
RELEASE, NAMESPACE = "rel", "asynctask-system"
STANDARD_LABELS = (
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
    "helm.sh/chart",
)
CLUSTER_SCOPED = {
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "Namespace",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}
ADMISSION = REPO / "deploy" / "admission" / "asynctask-request-immutable.yaml"
AUTOSCALE_ANNOTATIONS = (
    "asynctask.dev/queues",
    "asynctask.dev/min-replicas",
    "asynctask.dev/max-replicas",
    "asynctask.dev/target-messages-per-replica",
)


@functools.cache
def helm() -> str:
    """The pinned helm binary (built from hack/helm/go.mod on first use, then cached)."""
    proc = subprocess.run(["bash", str(HELM_BUILD)], stdout=subprocess.PIPE, text=True, check=False)
    assert proc.returncode == 0, "building helm failed (see its output above)"
    return str(Path(proc.stdout.strip().splitlines()[-1]) / "helm")


def run_helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([helm(), *args], capture_output=True, text=True, timeout=120, check=False)
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def template_text(*args: str, namespace: str = NAMESPACE, release: str = RELEASE) -> str:
    return run_helm("template", release, str(CHART), "--namespace", namespace, *args).stdout


def render(*args: str, namespace: str = NAMESPACE, release: str = RELEASE) -> list[dict[str, Any]]:
    text = template_text(*args, namespace=namespace, release=release)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def values_of(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text()) or {}
    return data


def by_kind(objects: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: d["spec"]["template"]["spec"] for name, d in by_kind(objects, "Deployment").items()
    }


def worker_deployments(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        name: d
        for name, d in by_kind(objects, "Deployment").items()
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    }


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def rules_of(objects: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = by_kind(objects, kind)[name]["rules"]
    return rules
