"""A real Kubernetes node on this machine: containerd, the kubelet, kube-proxy and
kube-scheduler against the test bed's control plane, so pods actually run.

containerd, runc and the CNI plugins are Debian's packages (``hack/install-deps.sh``); the
kubelet, kube-scheduler and kube-proxy are built from the control plane's pinned module
(``hack/node/build.sh``). Images come from ``testbed.images`` and are imported into
containerd, since there is no registry. The addresses and names are in ``nodeconfig``; what
the node changes on the machine, and how it is undone, is in ``nodehost``.

Use ``cluster()``: it takes the machine's node lock, cleans what a crashed run left, starts
a control plane that advertises the node's address (so ``kubernetes.default`` works from
pods), then the node, and undoes everything on exit. Needs root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from testbed import nodehost
from testbed._proc import free_port, log, spawn, stop, wait_until
from testbed.controlplane import ControlPlane, _client_cert, kubeconfig
from testbed.images import Image, build_all, import_all
from testbed.nodeconfig import (
    NODE_IP,
    NODE_NAME,
    CgroupLayout,
    NodePaths,
    cgroup_layout,
    cni_config,
    containerd_config,
    kube_proxy_config,
    kubelet_config,
)

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "node" / "build.sh"
CNI_BIN_DIR = Path("/usr/lib/cni")  # Debian's containernetworking-plugins
NOT_READY_TAINT = "node.kubernetes.io/not-ready:NoSchedule"


def build_node_binaries() -> Path:
    """Build (or reuse from cache) kubelet, kube-scheduler and kube-proxy."""
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"building the node binaries failed (exit {proc.returncode})")
    return Path(proc.stdout.strip().splitlines()[-1])


def preflight() -> None:
    """Fail with what is missing, before anything is changed on the machine."""
    if os.geteuid() != 0:
        raise RuntimeError("the test bed's node needs root (namespaces, cgroups, mounts)")
    missing = [
        tool
        for tool in ("containerd", "runc", "ctr", "iptables", "ip", "conntrack")
        if shutil.which(tool) is None
    ]
    missing += [
        f"{CNI_BIN_DIR}/{p}"
        for p in ("bridge", "host-local", "loopback")
        if not (CNI_BIN_DIR / p).exists()
    ]
    if missing:
        raise RuntimeError(
            f"missing for the node: {', '.join(missing)} (bash hack/install-deps.sh installs them)"
        )


@dataclass
class Node:
    """One node registered with ``cp``; ``start`` after the host was prepared."""

    cp: ControlPlane
    bin_dir: Path
    images: list[Image]
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="asynctask-node-")))
    _procs: list[tuple[str, subprocess.Popen[bytes], Path]] = field(default_factory=list)

    @property
    def paths(self) -> NodePaths:
        return NodePaths(self.work)

    def start(self) -> Node:
        layout = cgroup_layout(Path("/proc/self/mountinfo").read_text())
        log(
            "node",
            f"cgroup layout: {layout}; kubelet with cgroupfs"
            + ("" if layout == "v2" else ", failCgroupV1: false"),
        )
        nodehost.record_workdir(self.work)
        nodehost.enable_forwarding()
        self._start_containerd()
        import_all(self.images, self.paths.containerd_socket)
        self._start_scheduler()
        self._start_kubelet(layout)
        self._start_kube_proxy()
        self._wait_ready()
        return self

    def _kubeconfig(self, name: str, cn: str, org: str | None = None) -> Path:
        assert self.cp.workdir is not None
        pki = self.cp.workdir / "pki"
        _client_cert(pki, name, cn, org)
        path = self.work / f"{name}.kubeconfig"
        path.write_text(
            kubeconfig(self.cp.server, pki / "ca.crt", pki / f"{name}.crt", pki / f"{name}.key", cn)
        )
        return path

    def _spawn(self, name: str, args: list[str]) -> None:
        logfile = self.work / f"{name}.log"
        self._procs.append((name, spawn(args, logfile), logfile))

    def _start_containerd(self) -> None:
        paths = self.paths
        for d in (
            paths.cni_conf_dir,
            paths.cni_data_dir,
            paths.containerd_root,
            paths.containerd_state,
        ):
            d.mkdir(parents=True, exist_ok=True)
        (paths.cni_conf_dir / "10-asynctask.conflist").write_text(cni_config(paths))
        config = self.work / "containerd.toml"
        config.write_text(containerd_config(paths, CNI_BIN_DIR))
        log("node", "starting containerd")
        self._spawn("containerd", ["containerd", "--config", str(config)])
        wait_until(
            "containerd's socket",
            lambda: (
                subprocess.run(
                    ["ctr", "--address", str(paths.containerd_socket), "version"],
                    capture_output=True,
                    check=False,
                ).returncode
                == 0
            ),
            60,
            self._procs,
        )

    def _start_scheduler(self) -> None:
        kc = self._kubeconfig("kube-scheduler", "system:kube-scheduler")
        log("node", "starting kube-scheduler")
        self._spawn(
            "kube-scheduler",
            [
                str(self.bin_dir / "kube-scheduler"),
                "--kubeconfig",
                str(kc),
                "--authentication-kubeconfig",
                str(kc),
                "--authorization-kubeconfig",
                str(kc),
                "--leader-elect=false",
                "--bind-address",
                "127.0.0.1",
                "--secure-port",
                str(free_port()),
                "--v=1",
            ],
        )

    def _start_kubelet(self, layout: CgroupLayout) -> None:
        assert self.cp.workdir is not None
        kc = self._kubeconfig("kubelet", f"system:node:{NODE_NAME}", "system:nodes")
        config = self.work / "kubelet.yaml"
        config.write_text(
            kubelet_config(self.paths, self.cp.workdir / "pki" / "ca.crt", layout)
            + f"podLogsDir: {self.work / 'pod-logs'}\n"
        )
        log("node", f"starting the kubelet ({NODE_NAME}, {NODE_IP})")
        self._spawn(
            "kubelet",
            [
                str(self.bin_dir / "kubelet"),
                "--config",
                str(config),
                "--kubeconfig",
                str(kc),
                "--node-ip",
                NODE_IP,
                "--hostname-override",
                NODE_NAME,
                "--container-runtime-endpoint",
                f"unix://{self.paths.containerd_socket}",
                "--root-dir",
                str(self.paths.kubelet_root),
                "--cert-dir",
                str(self.work / "kubelet-pki"),
                "--v=1",
            ],
        )

    def _start_kube_proxy(self) -> None:
        kc = self._kubeconfig("kube-proxy", "system:kube-proxy")
        config = self.work / "kube-proxy.yaml"
        config.write_text(kube_proxy_config(kc, free_port(), free_port()))
        log("node", "starting kube-proxy")
        self._spawn(
            "kube-proxy", [str(self.bin_dir / "kube-proxy"), "--config", str(config), "--v=1"]
        )

    def _node_ready(self) -> bool:
        out = self.cp.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
        if out.returncode != 0:
            return False
        conditions = json.loads(out.stdout)["status"].get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _wait_ready(self) -> None:
        wait_until(f"node {NODE_NAME} Ready", self._node_ready, 120, self._procs)
        # The controller manager runs without its node lifecycle controller (it would
        # evict pods of a node whose heartbeats a busy machine delays), so the taint the
        # kubelet registers with is removed here, once the node is Ready.
        self.cp.kubectl("taint", "node", NODE_NAME, f"{NOT_READY_TAINT}-", check=False)
        log("node", f"ready: node {NODE_NAME} ({NODE_IP})")

    def logs(self) -> dict[str, Path]:
        return {name: logfile for name, _, logfile in self._procs}

    def stop(self) -> None:
        for name, proc, _ in reversed(self._procs):
            log("node", f"stopping {name}")
            stop(proc)
        self._procs.clear()
        nodehost.clean(self.bin_dir / "kube-proxy", controlplane=False)
        if not os.environ.get("ASYNCTASK_KEEP_TESTBED"):
            shutil.rmtree(self.work, ignore_errors=True)


@contextmanager
def cluster() -> Iterator[tuple[ControlPlane, Node]]:
    """A control plane and one node with the project's images, torn down on exit."""
    preflight()
    bin_dir = build_node_binaries()
    images = build_all()
    lock = nodehost.HostLock()
    lock.acquire()
    try:
        nodehost.clean(bin_dir / "kube-proxy")  # whatever a crashed run left
        nodehost.add_node_link()
        with ControlPlane(address=NODE_IP) as cp:
            assert cp.workdir is not None
            nodehost.record_workdir(cp.workdir, "controlplane")
            node = Node(cp, bin_dir, images)
            try:
                node.start()
                yield cp, node
            finally:
                node.stop()
    finally:
        nodehost.clean(bin_dir / "kube-proxy")
        lock.release()
