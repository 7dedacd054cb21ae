"""The configuration files of the test bed's node, rendered from a few facts (pure).

The node is one kubelet with containerd, kube-proxy and a CNI bridge, on this machine. Its
addresses are fixed, so that a run that crashed can be cleaned up by the next one without a
record of what it made, and chosen from a range that nothing else here uses:

* ``100.72.0.0/16`` lies in the shared address space of RFC 6598 (``100.64.0.0/10``), which
  is meant for carrier-grade NAT between providers and is not used inside a host or a home
  or office network, unlike the 10/8, 172.16/12 and 192.168/16 ranges that Docker, VPNs and
  LANs take. Nothing is routed beyond this machine.
* ``NODE_IP`` (``100.72.255.1/32``) sits on an interface the test bed creates: the
  kubelet refuses a loopback node IP, and the apiserver must advertise an address that pods
  can reach (``kubernetes.default``).
* ``POD_CIDR`` (``100.72.0.0/24``) is the bridge's subnet; ``100.72.0.1`` is its gateway.
* Services keep the control plane's ``10.96.0.0/16``; kube-proxy routes them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

NODE_NAME = "asynctask-node"
NODE_IP = "100.72.255.1"
NODE_LINK = "atk-node0"  # an interface of its own (a portless bridge) holding NODE_IP
POD_CIDR = "100.72.0.0/24"
POD_GATEWAY = "100.72.0.1"
BRIDGE = "atk-br0"
CNI_NETWORK = "asynctask-pods"
PAUSE_IMAGE = "localhost/asynctask/pause:1"

CgroupLayout = Literal["v1", "hybrid", "v2"]


def cgroup_layout(mountinfo: str) -> CgroupLayout:
    """What /proc/self/mountinfo says about cgroups: ``v2`` (one unified hierarchy at
    /sys/fs/cgroup), ``hybrid`` (v1 controllers with a v2 hierarchy beside them, usually at
    /sys/fs/cgroup/unified) or ``v1``. The kubelet treats hybrid as v1."""
    v1 = v2_root = v2_elsewhere = False
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, fstype = left.split(), right.split()[:1]
        if len(fields) < 5 or not fstype:
            continue
        mountpoint = fields[4]
        if fstype[0] == "cgroup2":
            if mountpoint == "/sys/fs/cgroup":
                v2_root = True
            else:
                v2_elsewhere = True
        elif fstype[0] == "cgroup":
            v1 = True
    if v2_root and not v1:
        return "v2"
    if v1:
        return "hybrid" if v2_elsewhere or v2_root else "v1"
    raise ValueError("no cgroup filesystem is mounted; the kubelet cannot run here")


@dataclass(frozen=True)
class NodePaths:
    """Where one run of the node keeps its state (all under one work directory)."""

    work: Path

    @property
    def containerd_root(self) -> Path:
        return self.work / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.work / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.work / "containerd" / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.work / "containerd" / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.work / "cni" / "net.d"

    @property
    def cni_data_dir(self) -> Path:
        return self.work / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.work / "kubelet"


def containerd_config(paths: NodePaths, cni_bin_dir: Path) -> str:
    """containerd's own config: private root, state and socket (no clash with a system
    containerd), the CRI plugin on our CNI config and our locally imported pause image.

    ``restrict_oom_score_adj``: root here may lack CAP_SYS_RESOURCE, and then runc cannot
    lower a sandbox's oom_score_adj ("can't get final child's PID from pipe: EOF")."""
    return f"""version = 2
root = "{paths.containerd_root}"
state = "{paths.containerd_state}"
disabled_plugins = ["io.containerd.grpc.v1.cri.v1alpha2", "io.containerd.internal.v1.tracing",
                    "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
                    "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "{paths.containerd_socket}"

[ttrpc]
  address = "{paths.containerd_socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "{paths.runc_root}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir}"
    conf_dir = "{paths.cni_conf_dir}"
    max_conf_num = 1
"""


def cni_config(paths: NodePaths) -> str:
    """One bridge network for all pods. No IP masquerade: pods talk only to each other
    and to this machine (the apiserver and RabbitMQ on NODE_IP), so the bridge plugin adds
    no iptables rules that a crashed run could leave behind. host-local keeps its leases in
    the run's work directory."""
    return json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": CNI_NETWORK,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": BRIDGE,
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "dataDir": str(paths.cni_data_dir),
                        "ranges": [[{"subnet": POD_CIDR, "gateway": POD_GATEWAY}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                    },
                },
                {"type": "loopback"},
            ],
        },
        indent=2,
    )


def kubelet_config(
    paths: NodePaths, client_ca: Path, layout: CgroupLayout, cluster_dns: str | None = None
) -> str:
    """The KubeletConfiguration. cgroupfs, because no systemd runs here; on cgroup v1 (or
    hybrid) the kubelet of 1.35 refuses to start unless ``failCgroupV1: false``.

    The kubelet's API listens only on NODE_IP and lets the apiserver in without a client
    certificate (the test bed's apiserver has none for kubelets): anonymous requests are
    allowed, which is acceptable for an address that exists only on this machine.
    Evictions and image garbage collection are off: the images were imported here and
    cannot be pulled again, and a busy shared disk must not evict the system under test."""
    lines = [
        "apiVersion: kubelet.config.k8s.io/v1beta1",
        "kind: KubeletConfiguration",
        f"address: {NODE_IP}",
        "port: 10250",
        "readOnlyPort: 0",
        "healthzBindAddress: 127.0.0.1",
        "healthzPort: 0",
        "authentication:",
        "  anonymous: {enabled: true}",
        "  webhook: {enabled: false}",
        f"  x509: {{clientCAFile: {client_ca}}}",
        "authorization: {mode: AlwaysAllow}",
        "cgroupDriver: cgroupfs",
        f"failCgroupV1: {'true' if layout == 'v2' else 'false'}",
        "failSwapOn: false",
        "resolvConf: /etc/resolv.conf",
        "serializeImagePulls: false",
        "imageGCHighThresholdPercent: 100",
        "imageGCLowThresholdPercent: 99",
        "evictionHard: {memory.available: '0%', nodefs.available: '0%', imagefs.available: '0%',"
        " nodefs.inodesFree: '0%'}",
        "nodeStatusReportFrequency: 10s",
        "nodeStatusUpdateFrequency: 5s",
        "syncFrequency: 10s",
        "fileCheckFrequency: 5s",
        "maxPods: 60",
        "containerLogMaxSize: 10Mi",
        f"podCIDR: {POD_CIDR}",
        "localStorageCapacityIsolation: false",
    ]
    if cluster_dns:
        lines += [f"clusterDNS: [{cluster_dns}]", "clusterDomain: cluster.local"]
    return "\n".join(lines) + "\n"


def kube_proxy_config(kubeconfig: Path, healthz_port: int, metrics_port: int) -> str:
    """kube-proxy in iptables mode. ``masqueradeAll``: a pod that reaches a Service whose
    endpoint is on the same bridge gets its reply through this host, not around it.
    The conntrack settings of 0 leave the host's sysctls alone (they may be read-only)."""
    return f"""apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
hostnameOverride: {NODE_NAME}
bindAddress: {NODE_IP}
clusterCIDR: {POD_CIDR}
healthzBindAddress: 127.0.0.1:{healthz_port}
metricsBindAddress: 127.0.0.1:{metrics_port}
clientConnection:
  kubeconfig: {kubeconfig}
iptables:
  masqueradeAll: true
  syncPeriod: 10s
  minSyncPeriod: 1s
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
  udpTimeout: 0s
  udpStreamTimeout: 0s
"""
