"""The chart's gateway identity as the gateway's own e2e tests get it
(``tests.e2e.chart.gateway_rbac``): applied from the chart to the real apiserver, its token
does what the gateway needs and nothing more, per served namespace or cluster-wide, and
leaving the ``with`` block removes it again.

Real calls, not only ``kubectl auth can-i``: the token creates, patches and deletes an
AsyncTask, reviews a token and an access, and is refused elsewhere by the RBAC authorizer.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import ControlPlane
from tests.e2e.chart import GatewayIdentity, as_sa, can_i, gateway_container, gateway_rbac

pytestmark = pytest.mark.e2e


@pytest.fixture
def two_namespaces(control_plane: ControlPlane) -> Iterator[tuple[str, str]]:
    # Not t-*: the shared operator serves those namespaces.
    names = (f"gw-a-{uuid.uuid4().hex[:6]}", f"gw-b-{uuid.uuid4().hex[:6]}")
    for name in names:
        control_plane.kubectl("create", "namespace", name)
    yield names
    for name in names:
        control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def task(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncTask",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"queue": "hello", "request": {"name": "gateway"}},
    }


def create_as(
    cp: ControlPlane, config: Path, obj: dict[str, Any]
) -> subprocess.CompletedProcess[str]:
    """POST ``obj`` with the kubeconfig's token. --validate=false: kubectl's own schema
    check would list CRDs, a right the gateway neither has nor needs (the apiserver still
    validates the object)."""
    return as_sa(
        cp, config, "create", "--validate=false", "-o", "json", "-f", "-", stdin=json.dumps(obj)
    )


def test_gateway_rbac_per_namespace(
    control_plane: ControlPlane, two_namespaces: tuple[str, str], tmp_path: Path
) -> None:
    cp, (served, other) = control_plane, two_namespaces
    with gateway_rbac(cp, served, served=[served]) as gw:
        config = gw.kubeconfig(cp, tmp_path / "gateway")
        who = json.loads(as_sa(cp, config, "auth", "whoami", "-o", "json").stdout)
        assert who["status"]["userInfo"]["username"] == gw.subject
        for verb in ("get", "list", "watch", "create", "patch", "delete"):
            assert can_i(cp, config, verb, "asynctasks.asynctask.dev", served) == "yes", verb
            assert can_i(cp, config, verb, "asynctasks.asynctask.dev", other) == "no", verb
        assert can_i(cp, config, "list", "asynctasks.asynctask.dev", "*") == "no"
        assert can_i(cp, config, "patch", "asynctasks.asynctask.dev/status", served) == "no"
        for verb in ("get", "list", "create", "patch", "delete"):
            assert can_i(cp, config, verb, "asynctaskschedules.asynctask.dev", served) == "yes"
            assert can_i(cp, config, verb, "asynctaskschedules.asynctask.dev", other) == "no"
        assert can_i(cp, config, "watch", "asynctaskschedules.asynctask.dev", served) == "no"
        # AsyncQueues are cluster-scoped: read, pause and resume them whatever is served.
        for verb in ("get", "list", "patch"):
            assert can_i(cp, config, verb, "asyncqueues.asynctask.dev", "*") == "yes", verb
        assert can_i(cp, config, "delete", "asyncqueues.asynctask.dev", "*") == "no"
        assert can_i(cp, config, "patch", "asyncqueues.asynctask.dev/status", "*") == "no"
        assert can_i(cp, config, "get", "secrets", served) == "no"
        assert can_i(cp, config, "create", "tokenreviews.authentication.k8s.io", "*") == "yes"
        assert (
            can_i(cp, config, "create", "subjectaccessreviews.authorization.k8s.io", "*") == "yes"
        )
        task_calls(cp, gw, config, served, other)
        reviews(cp, gw, config)
        cluster_scoped = [o for o in gw.objects if o["kind"].startswith("Cluster")]
    # Leaving the block removed what it applied: the cluster-scoped objects, which would
    # outlive the test's namespaces, are gone.
    for obj in cluster_scoped:
        gone = cp.kubectl("get", obj["kind"].lower(), obj["metadata"]["name"], check=False)
        assert gone.returncode != 0 and "NotFound" in gone.stderr, obj["metadata"]["name"]


def task_calls(
    cp: ControlPlane, gw: GatewayIdentity, config: Path, served: str, other: str
) -> None:
    """What the gateway does to tasks, done with its token: allowed where it serves, refused
    by the RBAC authorizer elsewhere and on the status subresource."""
    created = create_as(cp, config, task(served, "via-gateway"))
    assert created.returncode == 0, created.stderr
    cancel = as_sa(
        cp,
        config,
        "patch",
        "asynctask",
        "via-gateway",
        "-n",
        served,
        "--type=merge",
        "-p",
        '{"spec": {"cancel": true}}',
    )
    assert cancel.returncode == 0, cancel.stderr
    status = as_sa(
        cp,
        config,
        "patch",
        "asynctask",
        "via-gateway",
        "-n",
        served,
        "--subresource=status",
        "--type=merge",
        "-p",
        '{"status": {"phase": "Succeeded"}}',
    )
    assert status.returncode != 0 and "forbidden" in status.stderr.lower(), status.stderr
    elsewhere = create_as(cp, config, task(other, "via-gateway"))
    assert elsewhere.returncode != 0 and "forbidden" in elsewhere.stderr.lower()
    assert gw.subject in elsewhere.stderr
    deleted = as_sa(cp, config, "delete", "asynctask", "via-gateway", "-n", served)
    assert deleted.returncode == 0, deleted.stderr


def reviews(cp: ControlPlane, gw: GatewayIdentity, config: Path) -> None:
    """The two reviews the gateway makes for each caller, made with its token."""
    token = cp.kubectl(
        "create", "token", gw.service_account, "-n", gw.namespace, "--duration=10m"
    ).stdout.strip()
    out = create_as(
        cp,
        config,
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"]["user"]["username"] == gw.subject
    out = create_as(
        cp,
        config,
        {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": "someone",
                "resourceAttributes": {
                    "group": "asynctask.dev",
                    "resource": "asynctasks",
                    "verb": "create",
                    "namespace": gw.namespace,
                },
            },
        },
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["status"]["allowed"] is False


def test_gateway_rbac_cluster_wide(
    control_plane: ControlPlane, two_namespaces: tuple[str, str], tmp_path: Path
) -> None:
    cp, (home, other) = control_plane, two_namespaces
    with gateway_rbac(cp, home) as gw:
        assert gw.served == ()
        config = gw.kubeconfig(cp, tmp_path / "gateway")
        assert can_i(cp, config, "list", "asynctasks.asynctask.dev", "*") == "yes"
        assert can_i(cp, config, "watch", "asynctasks.asynctask.dev", "*") == "yes"
        assert can_i(cp, config, "create", "asynctasks.asynctask.dev", other) == "yes"
        assert can_i(cp, config, "update", "asynctasks.asynctask.dev/status", other) == "no"
        assert can_i(cp, config, "list", "secrets", "*") == "no"
        kinds = sorted(o["kind"] for o in gw.objects)
        assert kinds == [
            "ClusterRole",
            "ClusterRole",
            "ClusterRole",  # asyncqueues, cluster-scoped
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ClusterRoleBinding",
            "ServiceAccount",
        ]


def test_gateway_container_of_the_chart(control_plane: ControlPlane) -> None:
    """What the gateway's e2e tests start: the chart's command and environment."""
    container = gateway_container(
        control_plane,
        "gw-home",
        served=["a", "b"],
        values=["gateway.audiences={asynctask-gateway}"],
    )
    assert container["command"] == ["asynctask-gateway"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ASYNCTASK_GATEWAY_NAMESPACES"] == "a,b"
    assert env["ASYNCTASK_GATEWAY_AUDIENCES"] == "asynctask-gateway"
    assert env["ASYNCTASK_GATEWAY_PORT"] == "8080"
    everywhere = gateway_container(control_plane, "gw-home")
    assert {e["name"]: e["value"] for e in everywhere["env"]}["ASYNCTASK_GATEWAY_NAMESPACES"] == ""
