"""The Helm chart against the real apiserver: lint, server-side validation of every
ci/*-values.yaml rendering (KEDA's and the Prometheus Operator's own CRD schemas
included), a real ``helm install`` into a namespace that enforces the ``restricted`` Pod
Security Standard (the HTTP gateway enabled: its Service and PodDisruptionBudget select its
Pods), the RBAC the chart grants (a ``kubectl auth can-i`` matrix for the operator's, the
workers' and the gateway's ServiceAccounts), and the operator run with nothing but the
chart's operator ServiceAccount token: it serves a task end to end and scales the chart's
worker Deployment through the scale subresource.

No kubelet runs on the local control plane, so the chart's Pods stay Pending; the
operator and the worker run as local processes with the environment the chart's
Deployments give their containers (Secret references resolved as the kubelet would).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from testbed import ControlPlane, RabbitMQ, probes, wait_until
from testbed._proc import free_port
from tests.conftest import EXISTING_CLUSTER
from tests.e2e.chart import (
    CHART,
    as_sa,
    can_i,
    crds_dir,
    helm,
    objects_of,
    template,
    token_kubeconfig,
)
from tests.e2e.system import Process, operator_ready, worker_ready
from tests.e2e.tasks import create, wait_phase

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
THIRD_PARTY_CRDS = {
    "keda.sh_scaledobjects.yaml": "scaledobjects.keda.sh",
    "keda.sh_triggerauthentications.yaml": "triggerauthentications.keda.sh",
    "monitoring.coreos.com_servicemonitors.yaml": "servicemonitors.monitoring.coreos.com",
}
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
}
PSA_WARNING = "would violate PodSecurity"
POOL_QUEUES = "hello,always-fails,business-failure"  # the chart's example pool
SIGNING_SECRET = "webhook-signing"  # rbac.secretNames of the installed release


def dry_run(cp: ControlPlane, text: str) -> subprocess.CompletedProcess[str]:
    return cp.kubectl("apply", "--dry-run=server", "-f", "-", input=text, check=False)


def new_namespace(cp: ControlPlane, prefix: str, labels: dict[str, str]) -> str:
    # Not t-*: the shared operator serves those namespaces.
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    cp.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
        ),
    )
    return name


def print_block(title: str, text: str) -> None:
    print(f"\n--- {title} ---\n{text.rstrip()}", flush=True)


@pytest.fixture(scope="module")
def third_party_crds(control_plane: ControlPlane) -> None:
    """KEDA's ScaledObject/TriggerAuthentication and the ServiceMonitor CRD, so renderings
    that use them are validated against their real schemas (server-side apply: the CRDs
    are too large for the last-applied annotation of a client-side apply)."""
    folder = crds_dir()
    for file in THIRD_PARTY_CRDS:
        control_plane.kubectl(
            "apply", "--server-side", "--force-conflicts", "-f", str(folder / file)
        )
    control_plane.kubectl(
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        *(f"crd/{name}" for name in THIRD_PARTY_CRDS.values()),
    )


@pytest.fixture(scope="module")
def dry_run_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """Where the renderings are dry-run: it warns about (and enforces) ``restricted``.
    Namespaces that ci values name (operator.watchNamespaces) are created if missing."""
    ns = new_namespace(control_plane, "helm-dry", RESTRICTED)
    named = {
        n
        for path in CI_VALUES
        for n in (
            (yaml.safe_load(path.read_text()) or {}).get("operator", {}).get("watchNamespaces", [])
        )
    }
    existing = set(
        control_plane.kubectl(
            "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}"
        ).stdout.split()
    )
    created = sorted(named - existing)
    for name in created:
        control_plane.kubectl("create", "namespace", name)
    yield ns
    for name in [ns, *created]:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


# --- lint and server-side validation of every scenario ------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_helm_lint_strict(control_plane: ControlPlane, values: Path) -> None:
    out = helm(control_plane, "lint", "--strict", str(CHART), "-f", str(values))
    assert "1 chart(s) linted, 0 chart(s) failed" in out.stdout, out.stdout


def test_helm_lint_strict_fails_on_invalid_values(control_plane: ControlPlane) -> None:
    out = helm(
        control_plane,
        "lint",
        "--strict",
        str(CHART),
        "--set",
        "workers.defaults.concurrency=many",
        check=False,
    )
    assert out.returncode != 0
    assert "concurrency" in out.stdout + out.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_rendering_passes_server_side_dry_run(
    control_plane: ControlPlane, third_party_crds: None, dry_run_namespace: str, values: Path
) -> None:
    text = template(control_plane, dry_run_namespace, "-f", str(values))
    kinds = sorted({o["kind"] for o in objects_of(text)})
    out = dry_run(control_plane, text)
    print_block(f"{values.name}: {', '.join(kinds)}", out.stdout)
    assert out.returncode == 0, out.stderr
    assert "(server dry run)" in out.stdout
    assert len(out.stdout.splitlines()) == len(objects_of(text))
    # The namespace warns about pod templates that would violate "restricted": none do.
    assert PSA_WARNING not in out.stderr, out.stderr


def test_dry_run_refuses_what_the_schemas_refuse(
    control_plane: ControlPlane, third_party_crds: None, dry_run_namespace: str
) -> None:
    """The dry-run is a real check: KEDA's schema refuses a ScaledObject whose trigger
    value is a number (the chart quotes it), and the namespace warns about a pod
    template without the chart's security contexts."""
    objects = objects_of(
        template(control_plane, dry_run_namespace, "-f", str(CHART / "ci" / "keda-values.yaml"))
    )
    scaled = next(o for o in objects if o["kind"] == "ScaledObject")
    assert dry_run(control_plane, json.dumps(scaled)).returncode == 0
    scaled["spec"]["triggers"][0]["metadata"]["value"] = 5
    out = dry_run(control_plane, json.dumps(scaled))
    print_block("a ScaledObject with a number as its trigger value", out.stderr)
    assert out.returncode != 0
    assert "spec.triggers[0].metadata.value" in out.stderr
    assert "must be of type string" in out.stderr

    worker = next(
        o
        for o in objects
        if o["kind"] == "Deployment"
        and o["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"
    )
    pod = worker["spec"]["template"]["spec"]
    del pod["securityContext"]
    del pod["containers"][0]["securityContext"]
    out = dry_run(control_plane, json.dumps(worker))
    assert out.returncode == 0  # Deployments are only warned about; their Pods are refused
    assert PSA_WARNING in out.stderr, out.stderr


# --- a real install -----------------------------------------------------------------------


@dataclass
class Release:
    name: str
    namespace: str
    fullname: str
    amqp_url: str  # the vhost of this release, as the chart's Secret holds it
    values: dict[str, Any]

    @property
    def operator_sa(self) -> str:
        return f"{self.fullname}-operator"

    @property
    def worker_sa(self) -> str:
        return f"{self.fullname}-worker"

    @property
    def gateway_sa(self) -> str:
        return f"{self.fullname}-gateway"

    @property
    def pool(self) -> str:
        return f"{self.fullname}-worker-example"

    def subject(self, sa: str) -> str:
        return f"system:serviceaccount:{self.namespace}:{sa}"


@pytest.fixture(scope="module")
def release(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Release]:
    """The chart installed into a ``restricted`` namespace that its operator serves
    (operator.watchNamespaces), with the AMQP Secret it references; a virtual host of its
    own keeps its queues apart from the shared operator's."""
    ns = new_namespace(control_plane, "helm", RESTRICTED)
    name = f"h{uuid.uuid4().hex[:6]}"
    vhost = f"helm-{ns}"
    amqp_url = rabbitmq.add_vhost(vhost)
    control_plane.kubectl(
        "create",
        "secret",
        "generic",
        "asynctask-amqp",
        "-n",
        ns,
        f"--from-literal=url={amqp_url}",
        f"--from-literal=management-url={rabbitmq.management_url}",
    )
    values: dict[str, Any] = {
        "operator": {
            "watchNamespaces": [ns],
            "env": [{"name": "ASYNCTASK_EVENTS", "value": "all"}],
        },
        "rbac": {"secretNames": [SIGNING_SECRET]},
        # The HTTP gateway, serving the same namespace (its defaults: 2 replicas).
        "gateway": {"enabled": True},
        # One message per worker pod, so a few queued tasks scale the pool up.
        "workers": {"defaults": {"autoscaling": {"targetMessagesPerReplica": 1}}},
    }
    if EXISTING_CLUSTER:
        # A cluster with kubelets would run the chart's operator too: the local one, with
        # the chart's ServiceAccount token, must be the only one serving this namespace.
        values["operator"]["replicas"] = 0
    values_file = tmp_path_factory.mktemp("helm") / "values.yaml"
    values_file.write_text(yaml.safe_dump(values))
    try:
        out = helm(
            control_plane,
            "install",
            name,
            str(CHART),
            "--namespace",
            ns,
            "--skip-crds",
            "-f",
            str(values_file),
            "--timeout",
            "120s",
        )
        print_block(f"helm install {name} --namespace {ns}", out.stdout[:600])
        yield Release(name, ns, f"{name}-asynctask", amqp_url, values)
    finally:
        helm(control_plane, "uninstall", name, "--namespace", ns, "--timeout", "60s", check=False)
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)
        rabbitmq.delete_vhost(vhost)


def deployments(cp: ControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    items = json.loads(cp.kubectl("get", "deployments", "-n", ns, "-o", "json").stdout)["items"]
    return {d["metadata"]["name"]: d for d in items}


def test_install_creates_pods_that_pass_restricted(
    control_plane: ControlPlane, release: Release
) -> None:
    ns = release.namespace
    labels = json.loads(control_plane.kubectl("get", "namespace", ns, "-o", "json").stdout)[
        "metadata"
    ]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    wanted = {name: d["spec"]["replicas"] for name, d in deployments(control_plane, ns).items()}
    gateway = f"{release.fullname}-gateway"
    assert set(wanted) == {f"{release.fullname}-operator", release.pool, gateway}
    assert wanted[gateway] == 2

    def pods_by_owner() -> dict[str, int]:
        pods = json.loads(control_plane.kubectl("get", "pods", "-n", ns, "-o", "json").stdout)
        counts: dict[str, int] = {}
        for pod in pods["items"]:
            for ref in pod["metadata"].get("ownerReferences", []):
                deployment = ref["name"].rsplit("-", 1)[0]  # ReplicaSet <deployment>-<hash>
                counts[deployment] = counts.get(deployment, 0) + 1
        return counts

    # kube-controller-manager creates each ReplicaSet's Pods; admission lets them in.
    wait_until(
        "the chart's Pods",
        lambda: all(pods_by_owner().get(n, 0) >= r for n, r in wanted.items()),
        timeout=60,
    )
    table = control_plane.kubectl("get", "replicasets,pods", "-n", ns, "-o", "wide").stdout
    print_block(f"ReplicaSets and Pods in {ns} (restricted)", table)
    events = json.loads(control_plane.kubectl("get", "events", "-n", ns, "-o", "json").stdout)
    reasons = [
        (e["reason"], e["involvedObject"]["name"], e.get("message", "")) for e in events["items"]
    ]
    assert not [r for r in reasons if r[0] == "FailedCreate"], reasons
    assert any(r[0] == "SuccessfulCreate" for r in reasons), reasons

    # The same namespace refuses a Pod that is not "restricted": the chart's worker pod
    # template, without the chart's security contexts.
    worker = deployments(control_plane, ns)[release.pool]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "chart-worker-pod", "namespace": ns},
        "spec": worker["spec"]["template"]["spec"],
    }
    allowed = control_plane.kubectl(
        "create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False
    )
    assert allowed.returncode == 0, allowed.stderr
    del pod["spec"]["securityContext"]
    del pod["spec"]["containers"][0]["securityContext"]
    refused = control_plane.kubectl("create", "-f", "-", input=json.dumps(pod), check=False)
    print_block("a Pod without the chart's security contexts", refused.stderr)
    assert refused.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in refused.stderr


def test_gateway_service_and_budget_select_the_gateway_pods(
    control_plane: ControlPlane, release: Release
) -> None:
    """The gateway's Service and PodDisruptionBudget select exactly the Pods that its
    ReplicaSet created (kube-controller-manager's disruption controller counts them), and
    those Pods carry the chart's identity and namespaces."""
    cp, ns, gateway = control_plane, release.namespace, f"{release.fullname}-gateway"

    def pods(selector: dict[str, str]) -> set[str]:
        label = ",".join(f"{k}={v}" for k, v in selector.items())
        items = json.loads(cp.kubectl("get", "pods", "-n", ns, "-l", label, "-o", "json").stdout)[
            "items"
        ]
        return {p["metadata"]["name"] for p in items}

    owned = {"app.kubernetes.io/instance": release.name, "app.kubernetes.io/component": "gateway"}
    wait_until("the gateway's two Pods", lambda: len(pods(owned)) == 2, timeout=60)
    mine = pods(owned)
    assert all(name.startswith(f"{gateway}-") for name in mine), mine
    service = json.loads(cp.kubectl("get", "service", gateway, "-n", ns, "-o", "json").stdout)
    assert service["spec"]["ports"] == [
        {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    ]
    assert pods(service["spec"]["selector"]) == mine

    def budget() -> dict[str, Any]:
        out = cp.kubectl("get", "poddisruptionbudget", gateway, "-n", ns, "-o", "json")
        status: dict[str, Any] = json.loads(out.stdout).get("status", {})
        return status

    wait_until(
        "the disruption controller to count the gateway Pods",
        lambda: budget().get("expectedPods") == 2,
        timeout=60,
    )
    print_block(f"PodDisruptionBudget {gateway}", json.dumps(budget(), indent=1)[:800])
    pod = json.loads(cp.kubectl("get", "pod", sorted(mine)[0], "-n", ns, "-o", "json").stdout)
    assert pod["spec"]["serviceAccountName"] == release.gateway_sa
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["ASYNCTASK_GATEWAY_NAMESPACES"] == ns  # operator.watchNamespaces
    assert container["command"] == ["asynctask-gateway"]


# --- the chart's ServiceAccounts ----------------------------------------------------------


def release_kubeconfig(cp: ControlPlane, release: Release, sa: str, path: Path) -> Path:
    return token_kubeconfig(cp, release.namespace, sa, path)


# (verb, resource, namespace: "" for the release's, "*" cluster-wide, or a name)
CAN_I: list[tuple[str, str, str]] = [
    ("get", "asynctasks.asynctask.dev", ""),
    ("list", "asynctasks.asynctask.dev", ""),
    ("watch", "asynctasks.asynctask.dev", ""),
    ("delete", "asynctasks.asynctask.dev", ""),
    ("patch", "asynctasks.asynctask.dev/status", ""),
    ("update", "asynctasks.asynctask.dev/status", ""),
    ("patch", "asynctasks.asynctask.dev", ""),
    ("update", "asynctasks.asynctask.dev", ""),
    ("create", "asynctasks.asynctask.dev", ""),
    ("get", "asynctaskschedules.asynctask.dev", ""),
    ("list", "asynctaskschedules.asynctask.dev", ""),
    ("watch", "asynctaskschedules.asynctask.dev", ""),
    ("patch", "asynctaskschedules.asynctask.dev/status", ""),
    ("patch", "asynctaskschedules.asynctask.dev", ""),
    ("create", "asynctaskschedules.asynctask.dev", ""),
    ("delete", "asynctaskschedules.asynctask.dev", ""),
    ("get", "asyncqueues.asynctask.dev", "*"),
    ("list", "asyncqueues.asynctask.dev", "*"),
    ("watch", "asyncqueues.asynctask.dev", "*"),
    ("patch", "asyncqueues.asynctask.dev", "*"),
    ("patch", "asyncqueues.asynctask.dev/status", "*"),
    ("delete", "asyncqueues.asynctask.dev", "*"),
    ("get", "asynctasks.asynctask.dev", "default"),
    ("create", "asynctasks.asynctask.dev", "default"),
    ("delete", "asynctasks.asynctask.dev", "default"),
    ("list", "asynctasks.asynctask.dev", "*"),
    ("create", "tokenreviews.authentication.k8s.io", "*"),
    ("create", "subjectaccessreviews.authorization.k8s.io", "*"),
    ("create", "localsubjectaccessreviews.authorization.k8s.io", ""),
    ("impersonate", "users", "*"),
    ("impersonate", "serviceaccounts", ""),
    ("create", "events", ""),
    ("create", "events.events.k8s.io", ""),
    ("get", "deployments.apps", ""),
    ("list", "deployments.apps", ""),
    ("watch", "deployments.apps", ""),
    ("get", "deployments.apps/scale", ""),
    ("patch", "deployments.apps/scale", ""),
    ("patch", "deployments.apps", ""),
    ("list", "deployments.apps", "default"),
    ("list", "customresourcedefinitions.apiextensions.k8s.io", "*"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", "*"),
    ("list", "namespaces", "*"),
    ("get", f"secrets/{SIGNING_SECRET}", ""),
    ("get", "secrets/another-secret", ""),
    ("get", "secrets", ""),
    ("list", "secrets", ""),
    ("create", "pods", ""),
    ("create", "serviceaccounts/token", ""),
]
# What the chart grants its operator (operator.watchNamespaces = [the release namespace],
# the built-in autoscaler in the release namespace, one Secret name for webhook keys).
OPERATOR_MAY = {
    ("get", "asynctasks.asynctask.dev", ""),
    ("list", "asynctasks.asynctask.dev", ""),
    ("watch", "asynctasks.asynctask.dev", ""),
    ("delete", "asynctasks.asynctask.dev", ""),
    ("patch", "asynctasks.asynctask.dev/status", ""),
    ("update", "asynctasks.asynctask.dev/status", ""),
    # AsyncTaskSchedule: create a slot's task, cancel the active one (Replace), read the
    # schedules and write their status; never edit a schedule's spec nor create one
    ("create", "asynctasks.asynctask.dev", ""),
    ("patch", "asynctasks.asynctask.dev", ""),
    ("get", "asynctaskschedules.asynctask.dev", ""),
    ("list", "asynctaskschedules.asynctask.dev", ""),
    ("watch", "asynctaskschedules.asynctask.dev", ""),
    ("patch", "asynctaskschedules.asynctask.dev/status", ""),
    # AsyncQueue (cluster-scoped): read the policies and write their status, never the spec
    ("get", "asyncqueues.asynctask.dev", "*"),
    ("list", "asyncqueues.asynctask.dev", "*"),
    ("watch", "asyncqueues.asynctask.dev", "*"),
    ("patch", "asyncqueues.asynctask.dev/status", "*"),
    ("create", "events", ""),
    ("create", "events.events.k8s.io", ""),
    ("get", "deployments.apps", ""),
    ("list", "deployments.apps", ""),
    ("watch", "deployments.apps", ""),
    ("get", "deployments.apps/scale", ""),
    ("patch", "deployments.apps/scale", ""),
    ("get", f"secrets/{SIGNING_SECRET}", ""),
}
# What it grants its gateway (same namespaces): review callers, and do to tasks what an
# allowed caller asked (never their status, never Secrets, nowhere else, no impersonation).
GATEWAY_MAY = {
    ("get", "asynctasks.asynctask.dev", ""),
    ("list", "asynctasks.asynctask.dev", ""),
    ("watch", "asynctasks.asynctask.dev", ""),
    ("create", "asynctasks.asynctask.dev", ""),
    ("patch", "asynctasks.asynctask.dev", ""),
    ("delete", "asynctasks.asynctask.dev", ""),
    # schedules as an allowed caller asked (no watch: read per call), and queues cluster-wide:
    # read, pause and resume (never create or delete one, never their status)
    ("get", "asynctaskschedules.asynctask.dev", ""),
    ("list", "asynctaskschedules.asynctask.dev", ""),
    ("create", "asynctaskschedules.asynctask.dev", ""),
    ("patch", "asynctaskschedules.asynctask.dev", ""),
    ("delete", "asynctaskschedules.asynctask.dev", ""),
    ("get", "asyncqueues.asynctask.dev", "*"),
    ("list", "asyncqueues.asynctask.dev", "*"),
    ("patch", "asyncqueues.asynctask.dev", "*"),
    ("create", "tokenreviews.authentication.k8s.io", "*"),
    ("create", "subjectaccessreviews.authorization.k8s.io", "*"),
}
MAY = {"operator": OPERATOR_MAY, "worker": set(), "gateway": GATEWAY_MAY}


def can_i_matrix(
    cp: ControlPlane, release: Release, configs: dict[str, Path]
) -> dict[tuple[str, str, str], dict[str, str]]:
    return {
        row: {
            sa: can_i(cp, config, row[0], row[1], row[2] or release.namespace)
            for sa, config in configs.items()
        }
        for row in CAN_I
    }


def print_matrix(release: Release, matrix: dict[tuple[str, str, str], dict[str, str]]) -> None:
    width = max(len(f"{v} {r}") for v, r, _ in CAN_I) + 2
    lines = [
        f"{'kubectl auth can-i':<{width}}{'namespace':<20}" + "".join(f"{sa:<10}" for sa in MAY)
    ]
    for (verb, resource, where), answers in matrix.items():
        scope = {"": "release", "*": "(cluster)"}.get(where, where)
        lines.append(
            (
                f"{verb + ' ' + resource:<{width}}{scope:<20}"
                + "".join(f"{answers[sa]:<10}" for sa in MAY)
            ).rstrip()
        )
    print_block(
        f"can-i matrix, release {release.name} in {release.namespace} "
        "(release = the release namespace)",
        "\n".join(lines),
    )


def test_can_i_matrix_of_the_chart_service_accounts(
    control_plane: ControlPlane, release: Release, tmp_path_factory: pytest.TempPathFactory
) -> None:
    folder = tmp_path_factory.mktemp("tokens")
    accounts = {
        "operator": release.operator_sa,
        "worker": release.worker_sa,
        "gateway": release.gateway_sa,
    }
    configs = {
        sa: release_kubeconfig(control_plane, release, name, folder / sa)
        for sa, name in accounts.items()
    }
    for sa, config in configs.items():  # the tokens are the ServiceAccounts'
        who = as_sa(control_plane, config, "auth", "whoami", "-o", "json")
        assert who.returncode == 0, who.stderr
        assert json.loads(who.stdout)["status"]["userInfo"]["username"] == release.subject(
            accounts[sa]
        )
    matrix = can_i_matrix(control_plane, release, configs)
    print_matrix(release, matrix)
    for row, answers in matrix.items():
        for sa, may in MAY.items():
            assert answers[sa] == ("yes" if row in may else "no"), (sa, row)


# --- the operator with the chart's ServiceAccount token -----------------------------------


def container_env(
    cp: ControlPlane, release: Release, container: dict[str, Any], pod_name: str
) -> dict[str, str]:
    """A container's environment as the kubelet would give it: values, Secret keys (read
    here with admin rights, as the kubelet reads them) and the pod's own fields."""
    env: dict[str, str] = {}
    secrets: dict[str, dict[str, str]] = {}
    for item in container.get("env", []):
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            if ref["name"] not in secrets:
                secrets[ref["name"]] = json.loads(
                    cp.kubectl(
                        "get",
                        "secret",
                        ref["name"],
                        "-n",
                        release.namespace,
                        "-o",
                        "jsonpath={.data}",
                    ).stdout
                )
            data = secrets[ref["name"]]
            if ref["key"] in data:
                env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
            else:
                assert ref.get("optional"), f"Secret {ref['name']} has no key {ref['key']}"
        else:
            field = source["fieldRef"]["fieldPath"]
            env[item["name"]] = {
                "metadata.namespace": release.namespace,
                "metadata.name": pod_name,
            }[field]
    return env


def local_env(kubeconfig: Path, extra: dict[str, str]) -> dict[str, str]:
    """This machine's environment without any cluster credentials or project settings."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ASYNCTASK_", "KUBECONFIG"))}
    return {**base, "KUBECONFIG": str(kubeconfig), **extra}


def chart_operator(
    cp: ControlPlane, release: Release, op_container: dict[str, Any], logs: Path
) -> Process:
    """The operator as the chart runs it, started here: its command line and environment
    are the chart's, with the operator ServiceAccount's token (no admin certificate); only
    the health endpoint moves to a free loopback port."""
    ns = release.namespace
    config = release_kubeconfig(cp, release, release.operator_sa, logs / "operator.kubeconfig")
    assert "client-key" not in config.read_text()  # a token, no admin certificate
    assert op_container["command"] == ["asynctask-operator"]
    live = free_port()
    args = [
        a if not a.startswith("--liveness=") else f"--liveness={probes.liveness_url(live)}"
        for a in op_container["args"]
    ]
    assert "--standalone" in args and f"--namespace={ns}" in args
    op_env = local_env(config, container_env(cp, release, op_container, "operator-local"))
    assert op_env["ASYNCTASK_AMQP_URL"] == release.amqp_url
    assert op_env["ASYNCTASK_EVENTS"] == "all"
    return Process(
        "helm-operator",
        [sys.executable, "-m", "asynctask_operator", *args],
        op_env,
        logs,
        operator_ready(live),
    )


def chart_worker(
    cp: ControlPlane, release: Release, wk_container: dict[str, Any], logs: Path
) -> Process:
    """The worker: the chart's pool command and environment (its PYTHONPATH points into
    the image; here the examples are in the repository), with no cluster credentials."""
    wk_env = container_env(cp, release, wk_container, "worker-local")
    assert wk_env["ASYNCTASK_WORKER_QUEUES"] == POOL_QUEUES
    wk_env["PYTHONPATH"] = str(REPO / "examples")
    metrics_port = free_port()  # a free port here, for its readiness gauge
    wk_env["ASYNCTASK_WORKER_METRICS_PORT"] = str(metrics_port)
    assert wk_container["command"] == ["asynctask-worker"]
    return Process(
        "helm-worker",
        [sys.executable, "-m", "asynctask_worker", *wk_container["args"]],
        local_env(logs / "no-kubeconfig", wk_env),
        logs,
        worker_ready(metrics_port),
    )


def pool_replica_set_scaled(cp: ControlPlane, ns: str, replicas: int) -> Callable[[], bool]:
    """Whether kube-controller-manager has a ReplicaSet of the pool with ``replicas``."""

    def check() -> bool:
        found = cp.kubectl(
            "get", "replicasets", "-n", ns, "-l", "asynctask.dev/pool=example", "-o", "json"
        )
        return any(
            rs["spec"]["replicas"] == replicas and rs["status"].get("replicas") == replicas
            for rs in json.loads(found.stdout)["items"]
        )

    return check


def check_queued_tasks_scale_the_pool(
    cp: ControlPlane, release: Release, operator: Process
) -> None:
    """Three tasks, no worker yet: the operator queues them, and scales the pool to one
    worker per queued message (scale subresource, with the token)."""
    ns = release.namespace
    create(
        cp, ns, "hello", queue="hello", request={"name": "Helm", "steps": 2, "step_seconds": 0.1}
    )
    create(
        cp,
        ns,
        "short-lived",
        queue="hello",
        ttlSecondsAfterFinished=1,
        request={"steps": 1, "step_seconds": 0.1},
    )
    create(cp, ns, "fails", queue="always-fails", request={})
    for name in ("hello", "short-lived", "fails"):
        wait_phase(cp, ns, name, "Pending", timeout=30)
    wait_until(
        "the operator to scale the pool to 3",
        lambda: int(deployments(cp, ns)[release.pool]["spec"]["replicas"]) == 3,
        timeout=30,
    )
    wait_until("kube-controller-manager to follow", pool_replica_set_scaled(cp, ns, 3), timeout=60)
    print_block(
        "the operator scaled the chart's pool",
        "\n".join(
            ln for ln in operator.text().splitlines() if "scaling " in ln or "autoscaling " in ln
        ),
    )


def check_tasks_ran(cp: ControlPlane, ns: str) -> None:
    """hello Succeeded, fails ended in Error, short-lived was deleted after its TTL, and
    the operator recorded Events on the tasks."""
    st = wait_phase(cp, ns, "hello", "Succeeded", timeout=60)
    assert st["result"] == {"greeting": "Hello, Helm!", "steps": 2}
    st = wait_phase(cp, ns, "fails", "Error", timeout=60)
    assert st["error"]["reason"] == "HandlerException"

    def gone() -> bool:
        out = cp.kubectl("get", "asynctask", "short-lived", "-n", ns, check=False)
        return out.returncode != 0 and "NotFound" in out.stderr

    wait_until("ttlSecondsAfterFinished to delete short-lived", gone, timeout=60)
    events = json.loads(cp.kubectl("get", "events", "-n", ns, "-o", "json").stdout)
    on_tasks = [
        (e["involvedObject"]["name"], e["reason"])
        for e in events["items"]
        if e["involvedObject"]["kind"] == "AsyncTask"
    ]
    print_block("Events the operator recorded", "\n".join(map(str, on_tasks)))
    assert {n for n, _ in on_tasks} >= {"hello", "fails"}, on_tasks


def test_operator_with_the_chart_token_runs_tasks_and_scales_the_pool(
    control_plane: ControlPlane, release: Release, tmp_path_factory: pytest.TempPathFactory
) -> None:
    ns, cp = release.namespace, control_plane
    logs = tmp_path_factory.mktemp("helm-processes")
    found = deployments(cp, ns)
    (op_container,) = found[f"{release.fullname}-operator"]["spec"]["template"]["spec"][
        "containers"
    ]
    (wk_container,) = found[release.pool]["spec"]["template"]["spec"]["containers"]
    assert found[release.pool]["spec"]["replicas"] == 1
    operator = chart_operator(cp, release, op_container, logs)
    worker: Process | None = None
    try:
        operator.wait_ready(timeout=60)
        operator.wait_for_log(
            f"autoscaling {ns}/{release.pool} on {POOL_QUEUES}: 1 to 5 "
            "replicas, 1 message(s) per replica",
            timeout=30,
        )
        check_queued_tasks_scale_the_pool(cp, release, operator)
        worker = chart_worker(cp, release, wk_container, logs)
        worker.wait_ready(timeout=60)
        check_tasks_ran(cp, ns)
        text = operator.text()  # nothing was refused (kopf, the client and the scaler
        assert "forbidden" not in text.lower(), text[-3000:]  # all say "Forbidden")
        assert operator.alive() and worker.alive()
        writes_by_operator(cp, release)
    finally:
        if worker is not None:
            worker.stop()
        operator.stop()
        print_block("operator log (tail)", operator.text()[-2500:])
        if worker is not None:
            print_block("worker log (tail)", worker.text()[-1500:])


def writes_by_operator(cp: ControlPlane, release: Release) -> None:
    """On the local control plane, the audit log shows who wrote what: every write of the
    operator was made as its ServiceAccount, and none was refused."""
    if not cp.audit_log.is_file():
        # Only an existing cluster (the kind path) may lack one; the local one always has it.
        assert EXISTING_CLUSTER, f"the control plane wrote no audit log at {cp.audit_log}"
        print_block(
            "writes made with the operator's token",
            "not checked: no ASYNCTASK_E2E_AUDIT_LOG for this cluster",
        )
        return
    sa = release.subject(release.operator_sa)
    mine = [w for w in cp.writes(release.namespace) if w["user"] == sa]
    kinds = {(w["verb"], w["resource"], w["subresource"]) for w in mine}
    print_block(
        "writes made with the operator's token (audit log)", "\n".join(sorted(map(str, kinds)))
    )
    assert all(w["code"] < 300 for w in mine), mine
    assert {
        ("patch", "asynctasks", "status"),
        ("create", "events", None),
        ("delete", "asynctasks", None),
        ("patch", "deployments", "scale"),
    } <= kinds
