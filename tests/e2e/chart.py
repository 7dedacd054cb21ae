"""The Helm chart as test support: the pinned helm binary, renderings, ServiceAccount
tokens, and the gateway's RBAC taken from the chart onto a test cluster.

The gateway's e2e tests run the gateway as a local process (no kubelet runs on the local
control plane) but with the identity the chart gives it: ``gateway_rbac`` renders the
chart's gateway ServiceAccount and RBAC objects, applies them, and hands out a kubeconfig
holding only that ServiceAccount's token; ``gateway_container`` gives the command and
environment the chart's Deployment gives the gateway. So the rights and settings those
tests exercise are the chart's own, not a copy that could drift from it.

    with gateway_rbac(cp, "gw-home", served=["team-a"]) as gw:
        env = {e["name"]: e["value"] for e in gateway_container(
            cp, "gw-home", served=["team-a"])["env"]}
        env["KUBECONFIG"] = str(gw.kubeconfig(cp, tmp_path / "gateway.kubeconfig"))
        ...  # start asynctask-gateway with env
"""

from __future__ import annotations

import functools
import json
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from testbed import ControlPlane

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "asynctask"
GATEWAY_TEMPLATES = ("templates/serviceaccounts.yaml", "templates/gateway-rbac.yaml")


def _last_line_of(script: str) -> Path:
    proc = subprocess.run(
        ["bash", str(REPO / script)], stdout=subprocess.PIPE, text=True, check=False, timeout=1800
    )
    assert proc.returncode == 0, f"{script} failed (see its output above)"
    return Path(proc.stdout.strip().splitlines()[-1])


@functools.cache
def helm_bin() -> str:
    """The pinned helm (hack/helm/build.sh: built once, then cached)."""
    return str(_last_line_of("hack/helm/build.sh") / "helm")


@functools.cache
def crds_dir() -> Path:
    """KEDA's and the Prometheus Operator's CRDs from their pinned modules (fetch.sh)."""
    return _last_line_of("hack/helm/crds/fetch.sh")


def helm(cp: ControlPlane, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [helm_bin(), *args], env=cp.env(), capture_output=True, text=True, timeout=180, check=False
    )
    if check:
        assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def template(cp: ControlPlane, namespace: str, *args: str, release: str = "rel") -> str:
    return helm(cp, "template", release, str(CHART), "--namespace", namespace, *args).stdout


def objects_of(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def token_kubeconfig(
    cp: ControlPlane, namespace: str, sa: str, path: Path, duration: str = "1h"
) -> Path:
    """A kubeconfig with the cluster's address and CA and the ServiceAccount's token only
    (no admin certificate), its context's namespace set to ``namespace``."""
    admin = json.loads(
        cp.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )
    cluster = admin["clusters"][0]["cluster"]
    token = cp.kubectl(
        "create", "token", sa, "-n", namespace, f"--duration={duration}"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "cluster", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [
            {"name": sa, "context": {"cluster": "cluster", "user": sa, "namespace": namespace}}
        ],
        "current-context": sa,
    }
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return path


def as_sa(
    cp: ControlPlane, kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """kubectl with nothing but the credentials of ``kubeconfig``."""
    assert cp.bin_dir is not None
    env = {**cp.env(), "KUBECONFIG": str(kubeconfig)}
    return subprocess.run(
        [str(cp.bin_dir / "kubectl"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        input=stdin,
    )


def can_i(cp: ControlPlane, kubeconfig: Path, verb: str, resource: str, namespace: str) -> str:
    """``kubectl auth can-i`` as the kubeconfig's user: "yes" or "no". ``namespace`` "*"
    asks cluster-wide (cluster-scoped resources, or all namespaces). In ``resource``, a
    group's "x.group/y" is the subresource y, a core "x/y" the object named y."""
    resource, _, sub = resource.partition("/")
    if sub and "." not in resource:
        resource, sub = f"{resource}/{sub}", ""
    scope = ["--all-namespaces"] if namespace == "*" else ["-n", namespace]
    if sub:
        scope.append(f"--subresource={sub}")
    out = as_sa(cp, kubeconfig, "auth", "can-i", verb, resource, *scope)
    answer = out.stdout.strip()
    assert answer in ("yes", "no"), out.stdout + out.stderr
    return answer


# --- the gateway's identity, from the chart -------------------------------------------------


@dataclass(frozen=True)
class GatewayIdentity:
    """The chart's gateway ServiceAccount and RBAC, applied to a cluster."""

    release: str
    namespace: str  # where the ServiceAccount lives (the release namespace)
    service_account: str
    served: tuple[str, ...]  # operator.watchNamespaces: empty means every namespace
    objects: list[dict[str, Any]] = field(repr=False)

    @property
    def subject(self) -> str:
        """The username the apiserver gives the ServiceAccount's tokens."""
        return f"system:serviceaccount:{self.namespace}:{self.service_account}"

    def kubeconfig(self, cp: ControlPlane, path: Path, duration: str = "1h") -> Path:
        """A kubeconfig holding this ServiceAccount's token only: run the gateway with
        KUBECONFIG set to it and it acts with exactly the chart's rights."""
        return token_kubeconfig(cp, self.namespace, self.service_account, path, duration)

    def remove(self, cp: ControlPlane) -> None:
        """Delete what was applied (the cluster-scoped objects outlive a namespace)."""
        cp.kubectl(
            "delete",
            "--ignore-not-found",
            "--wait=false",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": self.objects}),
            check=False,
        )


def gateway_rbac_objects(
    cp: ControlPlane,
    namespace: str,
    *,
    release: str,
    served: Sequence[str] = (),
    values: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """The chart's gateway ServiceAccount, (Cluster)Roles and bindings, rendered with
    ``gateway.enabled=true`` and ``operator.watchNamespaces=served``; ``values`` are more
    ``--set`` arguments (e.g. ``gateway.serviceAccount.name=x``)."""
    args = ["--set", "gateway.enabled=true"]
    if served:
        args += ["--set", "operator.watchNamespaces={" + ",".join(served) + "}"]
    for value in values:
        args += ["--set", value]
    for show in GATEWAY_TEMPLATES:
        args += ["--show-only", show]
    rendered = objects_of(template(cp, namespace, *args, release=release))
    return [
        o
        for o in rendered
        if o["metadata"]["labels"].get("app.kubernetes.io/component") == "gateway"
    ]


def gateway_container(
    cp: ControlPlane, namespace: str, *, served: Sequence[str] = (), values: Sequence[str] = ()
) -> dict[str, Any]:
    """The container of the chart's gateway Deployment (``command``, ``env``, ``ports``,
    probes), rendered like ``gateway_rbac_objects``: run the gateway process with its
    command and ``{e["name"]: e["value"] for e in container["env"]}`` to run it as the
    chart configures it (the chart sets every value directly, no Secret references)."""
    args = ["--set", "gateway.enabled=true", "--show-only", "templates/gateway-deployment.yaml"]
    if served:
        args += ["--set", "operator.watchNamespaces={" + ",".join(served) + "}"]
    for value in values:
        args += ["--set", value]
    (deployment,) = [
        o for o in objects_of(template(cp, namespace, *args)) if o["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert all("value" in e for e in container["env"]), container["env"]
    found: dict[str, Any] = container
    return found


def apply_gateway_rbac(
    cp: ControlPlane,
    namespace: str,
    *,
    served: Sequence[str] = (),
    release: str | None = None,
    values: Sequence[str] = (),
) -> GatewayIdentity:
    """Apply the chart's gateway ServiceAccount (in ``namespace``) and its RBAC: task
    rights in the ``served`` namespaces (RoleBindings; they must exist), or cluster-wide
    when ``served`` is empty. A fresh release name by default, so the cluster-scoped
    objects of two callers never collide."""
    release = release or f"gw{uuid.uuid4().hex[:6]}"
    objects = gateway_rbac_objects(cp, namespace, release=release, served=served, values=values)
    (sa,) = [o["metadata"]["name"] for o in objects if o["kind"] == "ServiceAccount"]
    cp.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})
    )
    return GatewayIdentity(release, namespace, sa, tuple(served), objects)


@contextmanager
def gateway_rbac(
    cp: ControlPlane,
    namespace: str,
    *,
    served: Sequence[str] = (),
    release: str | None = None,
    values: Sequence[str] = (),
) -> Iterator[GatewayIdentity]:
    """``apply_gateway_rbac`` for the length of a ``with`` block (or a fixture)."""
    identity = apply_gateway_rbac(cp, namespace, served=served, release=release, values=values)
    try:
        yield identity
    finally:
        identity.remove(cp)
