"""The in-cluster fixtures: the whole system installed by ``helm install`` onto a real node.

The test bed's node (``testbed.node``: containerd, the kubelet, kube-proxy, kube-scheduler)
joins a control plane of its own. ``make dist`` (``hack/dist.py``) builds the release's files
into a temporary folder, and the README's "Install on your cluster" lines run there as
written (``install_lines.py``): they import the image from its OCI archive into the node's
containerd and ``helm install`` the packaged chart. The chart then runs the operator and the
example worker pool as pods in a namespace that enforces the ``restricted`` Pod Security
Standard; a ``helm upgrade`` from the same package sets the tests' values.

RabbitMQ stays a process on this machine (``testbed.RabbitMQ``, listening on the node's
IP) that pods reach through a Service with manual Endpoints, rather than an image built
from Debian's rabbitmq-server: it starts in seconds instead of adding an Erlang image
build, and the tests inspect and manage the very broker the pods use, the same way the
other e2e tests do. The test bed runs no cluster DNS, so the chart's AMQP Secret names the
Service by its ClusterIP; kube-proxy routes it like any Service.

The same tests run on a kind cluster (``make kind-e2e``): with ``ASYNCTASK_INCLUSTER_KUBECONFIG``
set, nothing is started here; the packaged chart is installed into that cluster with
``ASYNCTASK_INCLUSTER_IMAGE`` (already loaded into its nodes) and the broker URLs as pods there
see them (``ASYNCTASK_INCLUSTER_AMQP_URL``, ``ASYNCTASK_INCLUSTER_MANAGEMENT_URL``), and the audit
log for the write budget is ``ASYNCTASK_E2E_AUDIT_LOG``. One list of tests, two clusters.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed import RabbitMQ
from testbed.controlplane import ControlPlane, build_binaries
from testbed.images import PROJECT_REPOSITORY, project_version
from testbed.node import Node, cluster
from testbed.nodeconfig import NODE_IP
from tests.incluster.install_lines import install_lines

REPO = Path(__file__).resolve().parents[2]
NAMESPACE = "asynctask-system"
#: Where the host's RabbitMQ is a Service (the README's lines create NAMESPACE themselves).
BROKER_NAMESPACE = "asynctask-broker"
VHOST = "incluster"
RELEASE = "asynctask"
POOL_DEPLOYMENT = "asynctask-worker-example"
EXISTING_CLUSTER = os.environ.get("ASYNCTASK_INCLUSTER_KUBECONFIG", "")
#: The example pool's worker drains for this long after SIGTERM (the chart gives the pod
#: 15 s more); short, so that the tests of a drain and of a killed worker stay short.
WORKER_GRACE_SECONDS = 8
#: The worker pools' autoscaling values (the Python pool, and any pool beside it that a test
#: shows autoscaled the same way).
POOL_AUTOSCALING = {
    "enabled": True,
    "minReplicas": 0,
    "maxReplicas": 3,
    "targetMessagesPerReplica": 2,
}
#: The built-in autoscaler's window before it scales an idle pool down (to zero here).
SCALE_DOWN_WINDOW_SECONDS = 5


def helm_binary() -> Path:
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "helm" / "build.sh")],
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    return Path(proc.stdout.strip().splitlines()[-1]) / "helm"


def dist(out: Path, *, image: bool) -> Path:
    """``make dist`` into ``out``; returns the packaged chart."""
    proc = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), str(REPO / "hack" / "dist.py"), "--out", str(out)]
        + ([] if image else ["--no-image"]),
        env={**os.environ, "PYTHONPATH": str(REPO / "hack")},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(proc.stdout)  # what it built, with the sizes
    return out / f"asynctask-{project_version()}.tgz"


@dataclass
class InCluster:
    """The installed system: its cluster, the image its pods run, the chart package."""

    cp: ControlPlane
    image: str
    chart: Path
    #: The node's containerd (the test bed's node only), to import an image a test needs.
    containerd: Path | None = None

    def helm(self, *args: str, timeout: float = 400) -> str:
        return helm(self.cp, *args, timeout=timeout)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        return self.cp.kubectl("-n", NAMESPACE, *args, check=check, input=input, timeout=timeout)

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def pods(self, component: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(
            "pods", "-l", f"app.kubernetes.io/component={component}"
        )["items"]
        return [p for p in items if not p["metadata"].get("deletionTimestamp")]

    def wait_for(self, what: str, check: Any, timeout: float = 120) -> Any:
        """Poll ``check()`` until it returns something truthy; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
            time.sleep(0.5)

    def task(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get("asynctask", name)
        return result

    def submit(self, name: str, queue: str, request: dict[str, Any], **spec: Any) -> None:
        manifest = {
            "apiVersion": "asynctask.dev/v1alpha1",
            "kind": "AsyncTask",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"queue": queue, "request": request, **spec},
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def wait_phase(self, name: str, phases: set[str], timeout: float = 180) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            task = self.task(name)
            return task if task.get("status", {}).get("phase") in phases else None

        result: dict[str, Any] = self.wait_for(
            f"{name} to reach {sorted(phases)}", reached, timeout
        )
        return result


def _broker_service(rmq: RabbitMQ) -> str:
    """A selector-less Service with manual Endpoints for the host's RabbitMQ node."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "List",
            "items": [
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": "rabbitmq", "namespace": BROKER_NAMESPACE},
                    "spec": {
                        "ports": [
                            {"name": "amqp", "port": 5672, "targetPort": rmq.port},
                            {
                                "name": "management",
                                "port": 15672,
                                "targetPort": rmq.management_port,
                            },
                        ]
                    },
                },
                {
                    "apiVersion": "v1",
                    "kind": "Endpoints",
                    "metadata": {"name": "rabbitmq", "namespace": BROKER_NAMESPACE},
                    "subsets": [
                        {
                            "addresses": [{"ip": NODE_IP}],
                            "ports": [
                                {"name": "amqp", "port": rmq.port},
                                {"name": "management", "port": rmq.management_port},
                            ],
                        }
                    ],
                },
            ],
        }
    )


def chart_values(image: str, *extra_pools: dict[str, Any]) -> dict[str, Any]:
    """The tests' values; ``extra_pools`` are worker pools beside the example one."""
    repository, _, tag = image.rpartition(":")
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "operator": {
            "watchNamespaces": [NAMESPACE],
            "env": [
                {
                    "name": "ASYNCTASK_SCALE_DOWN_WINDOW_SECONDS",
                    "value": str(SCALE_DOWN_WINDOW_SECONDS),
                }
            ],
        },
        "workers": {
            "pools": [
                {
                    "name": "example",
                    "app": "example_tasks:app",
                    "queues": ["hello", "always-fails", "business-failure"],
                    "gracePeriodSeconds": WORKER_GRACE_SECONDS,
                    "autoscaling": dict(POOL_AUTOSCALING),
                    "env": [{"name": "PYTHONPATH", "value": "/app/examples"}],
                },
                *extra_pools,
            ]
        },
    }


def _namespace(cp: ControlPlane) -> None:
    cp.kubectl("create", "namespace", NAMESPACE)
    cp.kubectl(
        "label",
        "namespace",
        NAMESPACE,
        "pod-security.kubernetes.io/enforce=restricted",
        "pod-security.kubernetes.io/enforce-version=latest",
    )


def _local_broker(cp: ControlPlane, rmq: RabbitMQ) -> tuple[str, str]:
    """The host's RabbitMQ as a Service; its URLs as pods see them."""
    cp.kubectl("create", "namespace", BROKER_NAMESPACE)
    cp.kubectl("apply", "-f", "-", input=_broker_service(rmq))
    broker = cp.kubectl(
        "-n", BROKER_NAMESPACE, "get", "service", "rabbitmq", "-o", "jsonpath={.spec.clusterIP}"
    ).stdout.strip()
    rmq.add_vhost(VHOST)
    return (f"amqp://guest:guest@{broker}:5672/{VHOST}", f"http://guest:guest@{broker}:15672")


def helm(cp: ControlPlane, *args: str, timeout: float = 400) -> str:
    proc = subprocess.run(
        [str(helm_binary()), *args],
        env=cp.env(),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    if proc.returncode != 0:
        pods = cp.kubectl("-n", NAMESPACE, "get", "pods,events", check=False).stdout
        raise RuntimeError(f"helm {args[0]} failed:\n{proc.stdout}\n{proc.stderr}\n{pods}")
    return proc.stdout


def _secret(cp: ControlPlane, urls: tuple[str, str]) -> None:
    cp.kubectl(
        "-n",
        NAMESPACE,
        "create",
        "secret",
        "generic",
        "asynctask-amqp",
        f"--from-literal=url={urls[0]}",
        f"--from-literal=management-url={urls[1]}",
    )


def _helm_values(
    cp: ControlPlane, verb: str, chart: Path, image: str, workdir: Path, *extra: str
) -> None:
    """``helm install`` or ``upgrade`` of the packaged chart with the tests' values."""
    values = workdir / "values.json"  # JSON is YAML: tags stay strings
    values.write_text(json.dumps(chart_values(image)))
    helm(cp, verb, RELEASE, str(chart), "--namespace", NAMESPACE, "-f", str(values), *extra)


def _readme_install(cp: ControlPlane, node: Node, urls: tuple[str, str], files: Path) -> None:
    """The README's install lines, run as written where make dist put its files; then the
    management URL the autoscaler reads, which the README leaves out."""
    env = {
        **cp.env(),
        "AMQP_URL": urls[0],
        "CONTAINERD_ADDRESS": str(node.paths.containerd_socket),
    }
    env["PATH"] = f"{helm_binary().parent}{os.pathsep}{env['PATH']}"
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", install_lines()],
        cwd=files,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
    )
    if proc.returncode != 0:
        pods = cp.kubectl("-n", NAMESPACE, "get", "pods,events", check=False).stdout
        raise RuntimeError(f"README's install lines failed:\n{proc.stdout}\n{proc.stderr}\n{pods}")
    cp.kubectl(
        "-n",
        NAMESPACE,
        "patch",
        "secret",
        "asynctask-amqp",
        "-p",
        json.dumps({"stringData": {"management-url": urls[1]}}),
    )


@contextlib.contextmanager
def _existing_cluster(workdir: Path) -> Iterator[InCluster]:
    audit = os.environ.get("ASYNCTASK_E2E_AUDIT_LOG", "")
    cp = ControlPlane(
        bin_dir=build_binaries(),
        kubeconfig=Path(EXISTING_CLUSTER),
        audit_log=Path(audit) if audit else Path(),
    )
    image = os.environ["ASYNCTASK_INCLUSTER_IMAGE"]
    chart = dist(workdir / "dist", image=False)  # kind loads the image itself
    _namespace(cp)
    try:
        _secret(
            cp,
            (
                os.environ["ASYNCTASK_INCLUSTER_AMQP_URL"],
                os.environ["ASYNCTASK_INCLUSTER_MANAGEMENT_URL"],
            ),
        )
        _helm_values(cp, "install", chart, image, workdir, "--wait", "--timeout", "5m")
        yield InCluster(cp, image, chart)
    finally:
        subprocess.run(
            [str(helm_binary()), "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait"],
            env=cp.env(),
            capture_output=True,
            check=False,
        )
        cp.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


@contextlib.contextmanager
def _local_cluster(workdir: Path) -> Iterator[InCluster]:
    files = workdir / "dist"
    chart = dist(files, image=True)
    with cluster() as (cp, node), RabbitMQ(management=True, address=NODE_IP) as rmq:
        urls = _local_broker(cp, rmq)
        _readme_install(cp, node, urls, files)
        image = f"{PROJECT_REPOSITORY}:{project_version()}"  # from the OCI archive
        _helm_values(cp, "upgrade", chart, image, workdir, "--wait", "--timeout", "5m")
        yield InCluster(cp, image, chart, node.paths.containerd_socket)


@pytest.fixture(scope="session")
def incluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InCluster]:
    workdir = tmp_path_factory.mktemp("incluster")
    systems = _existing_cluster(workdir) if EXISTING_CLUSTER else _local_cluster(workdir)
    with systems as system:
        try:
            yield system
        finally:
            print(
                "\n--- nodes, pods ---\n"
                + system.kubectl("get", "nodes,pods", "-o", "wide", check=False).stdout
            )
            for component in ("operator", "worker"):
                print(
                    f"--- {component} logs (tail) ---\n"
                    + system.kubectl(
                        "logs",
                        "-l",
                        f"app.kubernetes.io/component={component}",
                        "--tail=40",
                        "--prefix",
                        check=False,
                    ).stdout
                )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that sets a node up may build the project image first (when the code changed
    since ``hack/install-deps.sh`` built it) and start the control plane and the node: minutes
    on a busy 2-core machine. The first test of this folder (the crash test starts two
    nodes) and the first that uses the shared fixture get a longer time limit than the
    suite's 300 s; the others run on a started system."""
    here = Path(__file__).parent
    ours = [item for item in items if here in item.path.parents]
    firsts = (
        ours[:1] + [item for item in ours if "incluster" in getattr(item, "fixturenames", ())][:1]
    )
    for item in firsts:
        item.add_marker(pytest.mark.timeout(1200))
