"""What the test bed's node changes on this machine, and how all of it is undone.

A node touches machine-wide things: a dummy interface and a bridge, network namespaces in
/var/run/netns, kube-proxy's iptables chains, cgroups under ``kubepods``, mounts, the
``ip_forward`` sysctl, and processes (containerd, its shims, the containers) that outlive
a launcher that crashed. Their names are fixed (see ``nodeconfig``), so ``clean`` can undo
them without a record; a small state file remembers the previous run's work directory and
the ``ip_forward`` value to restore. One node at a time: ``HostLock`` serialises runs, so
two test sessions on one machine wait for each other instead of fighting over the bridge.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

from testbed._proc import log
from testbed.nodeconfig import BRIDGE, NODE_IP, NODE_LINK

RUN_DIR = Path("/run/asynctask-node")
STATE = RUN_DIR / "state.json"
NETNS_DIR = Path("/var/run/netns")
CGROUP_ROOT = Path("/sys/fs/cgroup")
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


class HostLock:
    """An exclusive lock held while a node runs here (released when the process ends)."""

    def __init__(self) -> None:
        RUN_DIR.mkdir(parents=True, exist_ok=True)
        self._file = (RUN_DIR / "lock").open("w")

    def acquire(self, timeout: float = 1800) -> None:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if not announced:
                    log("node", "another test bed node runs on this machine; waiting for it")
                    announced = True
                if time.monotonic() > deadline:
                    raise TimeoutError("another test bed node held the machine too long") from None
                time.sleep(2)

    def release(self) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def link_exists(name: str) -> bool:
    return _ip("link", "show", name, check=False).returncode == 0


def add_node_link() -> None:
    """The interface with NODE_IP: the node's address, and the apiserver's. A bridge with
    no ports, because it is always available, whereas the ``dummy`` link type needs a
    kernel module that a container may not load ("Unknown device type")."""
    _ip("link", "add", NODE_LINK, "type", "bridge")
    _ip("addr", "add", f"{NODE_IP}/32", "dev", NODE_LINK)
    _ip("link", "set", NODE_LINK, "up")


def enable_forwarding() -> None:
    """Pods reach Services whose endpoints are other pods through this host's routing.
    The previous value is recorded and restored by ``clean``."""
    state = _read_state()
    if "ip_forward" not in state:
        state["ip_forward"] = IP_FORWARD.read_text().strip()
        write_state(state)
    IP_FORWARD.write_text("1\n")


def _read_state() -> dict[str, str]:
    try:
        return dict(json.loads(STATE.read_text()))
    except (OSError, ValueError):
        return {}


def write_state(state: dict[str, str]) -> None:
    RUN_DIR.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps(state))


def record_workdir(work: Path, key: str = "work") -> None:
    """Remember a run's work directory: the node's (``work``), or the control plane's
    (``controlplane``: a crashed run's apiserver would live on, on the node's address)."""
    write_state({**_read_state(), key: str(work)})


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if text in (entry / "cmdline").read_bytes().decode(errors="replace"):
                pids.append(int(entry.name))
    return pids


def _kill(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _kubepods_cgroups() -> list[Path]:
    """Every kubepods cgroup, deepest first (so they can be removed in this order)."""
    found: list[Path] = []
    if CGROUP_ROOT.is_dir():
        for hierarchy in CGROUP_ROOT.iterdir():
            top = hierarchy / "kubepods" if hierarchy.is_dir() else None
            for candidate in (top, CGROUP_ROOT / "kubepods"):
                if candidate is not None and candidate.is_dir() and candidate not in found:
                    found.extend(p for p in candidate.rglob("*") if p.is_dir())
                    found.append(candidate)
    return sorted(set(found), key=lambda p: len(p.parts), reverse=True)


def kill_pod_processes() -> None:
    """SIGKILL every process in a kubepods cgroup: the containers of this node's pods."""
    for cgroup in _kubepods_cgroups():
        with contextlib.suppress(OSError):
            _kill([int(p) for p in (cgroup / "cgroup.procs").read_text().split()])


def _remove_cgroups() -> None:
    for _ in range(20):
        left = [c for c in _kubepods_cgroups() if c.exists()]
        for cgroup in left:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
        if not any(c.exists() for c in left):
            return
        time.sleep(0.25)
    log("node", "some kubepods cgroups could not be removed (still busy)")


def _unmount_under(prefix: str) -> None:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
            mounts.append(point)
    for point in sorted(set(mounts), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def _delete_netns() -> None:
    """containerd's CRI names its pod network namespaces cni-<uuid> in /var/run/netns."""
    if not NETNS_DIR.is_dir():
        return
    for ns in NETNS_DIR.glob("cni-*"):
        subprocess.run(["umount", "-l", str(ns)], capture_output=True, check=False)
        with contextlib.suppress(OSError):
            ns.unlink()


def kube_rules(saved: str) -> tuple[dict[str, list[list[str]]], dict[str, list[str]]]:
    """From ``iptables-save`` output: per table, the rules that jump to or live in a KUBE-*
    chain (as ``-D`` arguments), and the KUBE-* chains. The kubelet makes some of these
    (KUBE-FIREWALL, KUBE-KUBELET-CANARY) that ``kube-proxy --cleanup`` leaves."""
    rules: dict[str, list[list[str]]] = {}
    chains: dict[str, list[str]] = {}
    table = ""
    for line in saved.splitlines():
        if line.startswith("*"):
            table = line[1:]
        elif line.startswith(":KUBE-"):
            chains.setdefault(table, []).append(line[1:].split()[0])
        elif line.startswith("-A ") and "KUBE-" in line:
            words = shlex.split(line)
            if not words[1].startswith("KUBE-"):  # rules inside KUBE chains go with -F
                rules.setdefault(table, []).append(["-D", *words[1:]])
    return rules, chains


def _clean_iptables() -> None:
    for tool in ("iptables", "ip6tables"):
        saved = subprocess.run([f"{tool}-save"], capture_output=True, text=True, check=False)
        rules, chains = kube_rules(saved.stdout)
        for table, table_rules in rules.items():
            for rule in table_rules:
                subprocess.run([tool, "-w", "-t", table, *rule], capture_output=True, check=False)
        for table, names in chains.items():
            for flag in ("-F", "-X"):
                for name in names:
                    subprocess.run(
                        [tool, "-w", "-t", table, flag, name], capture_output=True, check=False
                    )


def clean(kube_proxy: Path | None, *, controlplane: bool = True) -> None:
    """Undo everything a node run leaves, whether it stopped cleanly or crashed; with
    ``controlplane``, also end the recorded control plane (left by a crashed run)."""
    state = _read_state()
    kill_pod_processes()
    keys = ("work", "controlplane") if controlplane else ("work",)
    for work in filter(None, (state.get(key) for key in keys)):
        # containerd, its shims, the kubelet, kube-proxy, the scheduler; etcd and the rest
        _kill(_processes_mentioning(work.rstrip("/") + "/"))
        time.sleep(0.5)
        _unmount_under(work)
        if not os.environ.get("ASYNCTASK_KEEP_TESTBED"):
            shutil.rmtree(work, ignore_errors=True)
    _delete_netns()
    if kube_proxy is not None:  # removes every KUBE-* chain and rule it made
        subprocess.run([str(kube_proxy), "--cleanup"], capture_output=True, check=False)
    _clean_iptables()
    for link in (BRIDGE, NODE_LINK):
        if link_exists(link):
            _ip("link", "delete", link, check=False)
    if "ip_forward" in state:
        IP_FORWARD.write_text(state["ip_forward"] + "\n")
    _remove_cgroups()
    STATE.unlink(missing_ok=True)
