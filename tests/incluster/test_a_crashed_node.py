"""The test bed's node after a crash: the next run starts clean, and its own stop leaves
nothing behind. Runs first in this folder (by its name), before the shared in-cluster
fixture holds the machine's node lock for the rest of the session.

It also is the node's smallest proof: a pod with the ``restricted`` security context runs
a command from an image built here, and ``kubectl logs`` shows what it printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from testbed.node import cluster
from testbed.nodeconfig import BRIDGE, NODE_LINK
from testbed.nodehost import NETNS_DIR, kube_rules, link_exists

REPO = Path(__file__).resolve().parents[2]

#: Starts the node with a running pod, then dies without any cleanup, as a killed test
#: session would; prints the PIDs of the control plane's and the node's processes first.
CRASHING_RUN = textwrap.dedent("""
    import json, os, sys
    from testbed.node import cluster
    with cluster() as (cp, node):
        cp.kubectl("run", "sleeper", "--image", node.images[1].tag,
                   "--image-pull-policy=Never", "--restart=Never", "--", "sleep", "600")
        cp.kubectl("wait", "--for=condition=Ready", "pod/sleeper", "--timeout=120s")
        print(json.dumps([p.pid for _, p, _ in [*cp._procs, *node._procs]]), flush=True)
        os._exit(9)
""")


def restricted_pod(image: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hello"},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 10001,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "hello",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "command": ["python3", "-c", "import os; print('hello from uid', os.getuid())"],
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
        },
    }


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False
    return state != "Z"


def _kube_chains() -> dict[str, list[str]]:
    saved = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True)
    return kube_rules(saved.stdout)[1]


def test_a_run_after_a_crashed_one_starts_clean_and_runs_a_restricted_pod() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "hack")}
    crashed = subprocess.run(
        [sys.executable, "-c", CRASHING_RUN],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert crashed.returncode == 9, crashed.stderr[-3000:]
    left = json.loads(crashed.stdout.strip().splitlines()[-1])
    assert any(_alive(pid) for pid in left), "the crash left no process: nothing was tested"
    assert link_exists(BRIDGE) and _kube_chains()

    with cluster() as (cp, node):
        assert not [pid for pid in left if _alive(pid)], "the crashed run's processes live on"
        cp.kubectl("apply", "-f", "-", input=json.dumps(restricted_pod(node.images[1].tag)))
        cp.kubectl(
            "wait", "--for=jsonpath={.status.phase}=Succeeded", "pod/hello", "--timeout=120s"
        )
        assert cp.kubectl("logs", "hello").stdout.strip() == "hello from uid 10001"
        nodes = cp.kubectl("get", "nodes", "-o", "wide").stdout
        print(f"\n{nodes}{cp.kubectl('get', 'pods', '-o', 'wide').stdout}")

    assert not link_exists(BRIDGE) and not link_exists(NODE_LINK)
    assert not _kube_chains()
    assert not list(NETNS_DIR.glob("cni-*")) if NETNS_DIR.is_dir() else True
