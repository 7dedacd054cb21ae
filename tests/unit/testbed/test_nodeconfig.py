"""The test bed node's pure parts: cgroup detection, rendered configs, image archives."""

from __future__ import annotations

import json
import tarfile
import tomllib
from pathlib import Path

import pytest

from testbed.archive import single_file_layer, write_docker_archive
from testbed.images import dockerfile_sources
from testbed.nodeconfig import (
    NodePaths,
    cgroup_layout,
    cni_config,
    containerd_config,
    kubelet_config,
)
from testbed.nodehost import kube_rules

HYBRID = """\
30 25 0:26 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw
33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory
"""
V2 = "30 25 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1 = "33 30 0:29 / /sys/fs/cgroup/memory rw,nosuid shared:14 - cgroup cgroup rw,memory\n"


@pytest.mark.parametrize(("mountinfo", "layout"), [(HYBRID, "hybrid"), (V2, "v2"), (V1, "v1")])
def test_cgroup_layout(mountinfo: str, layout: str) -> None:
    assert cgroup_layout(mountinfo) == layout


def test_no_cgroups_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no cgroup"):
        cgroup_layout("22 1 0:21 / /proc rw - proc proc rw\n")


def test_kubelet_tolerates_cgroup_v1_only_when_found() -> None:
    paths = NodePaths(Path("/w"))
    assert "failCgroupV1: false" in kubelet_config(paths, Path("/ca"), "hybrid")
    assert "failCgroupV1: true" in kubelet_config(paths, Path("/ca"), "v2")
    assert "cgroupDriver: cgroupfs" in kubelet_config(paths, Path("/ca"), "v1")


def test_containerd_config_is_private_and_restricts_oom_score() -> None:
    paths = NodePaths(Path("/w"))
    config = tomllib.loads(containerd_config(paths, Path("/usr/lib/cni")))
    cri = config["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["restrict_oom_score_adj"] is True
    assert cri["cni"]["conf_dir"] == "/w/cni/net.d"
    assert config["grpc"]["address"] == "/w/containerd/containerd.sock"
    assert config["root"].startswith("/w/") and config["state"].startswith("/w/")


def test_cni_bridge_adds_no_masquerade_rules() -> None:
    conf = json.loads(cni_config(NodePaths(Path("/w"))))
    bridge = conf["plugins"][0]
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"] == "/w/cni/ipam"


def test_dockerfile_sources() -> None:
    text = "FROM x AS b\nCOPY a.toml README.md ./\nCOPY --from=b /opt /opt\nADD dir/ /d/\n"
    assert dockerfile_sources(text) == ["a.toml", "README.md", "dir"]


def test_docker_archive_names_its_layers_and_tag(tmp_path: Path) -> None:
    binary = tmp_path / "pause"
    binary.write_bytes(b"\x7fELF")
    layer, out = tmp_path / "layer.tar", tmp_path / "image.tar"
    single_file_layer(layer, binary, "pause")
    write_docker_archive(out, "localhost/x:1", [layer], env=["A=1"], cmd=["/pause"])
    with tarfile.open(out) as tar:
        (entry,) = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        config = json.load(tar.extractfile(entry["Config"]))  # type: ignore[arg-type]
        assert entry["RepoTags"] == ["localhost/x:1"]
        assert config["rootfs"]["diff_ids"] == [f"sha256:{entry['Layers'][0].split('/')[0]}"]
        assert config["config"]["Cmd"] == ["/pause"]
    assert not out.with_name("image.tar.partial").exists()


SAVED = """*filter
:INPUT ACCEPT [0:0]
:KUBE-FIREWALL - [0:0]
:KUBE-KUBELET-CANARY - [0:0]
-A INPUT -j KUBE-FIREWALL
-A INPUT -s 10.0.0.0/8 -j ACCEPT
-A KUBE-FIREWALL ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming" -j DROP
COMMIT
*nat
:KUBE-SERVICES - [0:0]
-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES
COMMIT
"""


def test_kube_rules_finds_jumps_and_chains_only() -> None:
    rules, chains = kube_rules(SAVED)
    assert rules == {
        "filter": [["-D", "INPUT", "-j", "KUBE-FIREWALL"]],
        "nat": [
            [
                "-D",
                "PREROUTING",
                "-m",
                "comment",
                "--comment",
                "kubernetes service portals",
                "-j",
                "KUBE-SERVICES",
            ]
        ],
    }
    assert chains == {"filter": ["KUBE-FIREWALL", "KUBE-KUBELET-CANARY"], "nat": ["KUBE-SERVICES"]}
