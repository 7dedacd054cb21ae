"""The chart installed onto a real node: the operator pod as users get it, and a task
through the in-cluster operator and worker pods."""

from __future__ import annotations

import json
import time

from tests.incluster.conftest import NAMESPACE, InCluster


def test_operator_pod_runs_restricted_with_its_probes_passing(incluster: InCluster) -> None:
    ns = incluster.get("namespace", NAMESPACE)
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    (pod,) = incluster.pods("operator")
    assert pod["status"]["phase"] == "Running"
    (container,) = pod["status"]["containerStatuses"]
    assert container["ready"] and container["started"], container
    assert container["restartCount"] == 0, container
    spec = pod["spec"]["containers"][0]
    assert spec["image"] == incluster.image
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert spec["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # The process really runs as the image's non-root user, with the projected token.
    uid = incluster.kubectl(
        "exec", pod["metadata"]["name"], "--", "python", "-c", "import os; print(os.getuid())"
    ).stdout.strip()
    assert uid == "10001"
    token = incluster.kubectl(
        "exec",
        pod["metadata"]["name"],
        "--",
        "python",
        "-c",
        "print(len(open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()) > 0)",
    ).stdout.strip()
    assert token == "True"


def test_a_task_succeeds_with_its_progress_visible(incluster: InCluster) -> None:
    incluster.submit("progress", "hello", {"name": "cluster", "steps": 6, "step_seconds": 1.0})
    seen = incluster.wait_for(
        "progress between 0 and 100 while Processing",
        lambda: (
            lambda s: (
                s if s.get("phase") == "Processing" and 0 < s.get("progress", 0) < 100 else None
            )
        )(incluster.task("progress").get("status", {})),
        timeout=180,
    )
    assert seen["worker"].startswith("asynctask-worker-example-"), seen
    done = incluster.wait_phase(
        "progress", {"Succeeded", "Failed", "Error", "TimedOut", "Cancelled"}
    )
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert done["status"]["result"] == {"greeting": "Hello, cluster!", "steps": 6}
    assert done["status"]["progress"] == 100


def test_the_write_budget_holds_in_cluster(incluster: InCluster) -> None:
    """The operator pod, with its own ServiceAccount, writes at most three times for a
    task with a burst of progress reports (as tests/e2e/test_lifecycle.py measures)."""
    incluster.submit("budget", "hello", {"steps": 10, "step_seconds": 0.05})
    incluster.wait_phase("budget", {"Succeeded"})
    time.sleep(2)  # a late progress flush would show up now
    writes = [
        w
        for w in incluster.cp.writes(NAMESPACE)
        if w["resource"] in ("asynctasks", "events")
        and w["name"] == "budget"
        and not (w["verb"] == "create" and w["resource"] == "asynctasks")
    ]
    assert writes, "no write by the operator at all"
    assert all(
        w["user"] == f"system:serviceaccount:{NAMESPACE}:asynctask-operator" for w in writes
    ), writes
    assert len(writes) <= 3, writes


def _assert_json_lines(text: str, who: str) -> None:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, f"the {who} pod logged nothing"
    for line in lines:
        assert isinstance(json.loads(line), dict), f"{who}: {line}"
    assert "Traceback" not in text, text


def test_operator_and_worker_logs_are_json_without_tracebacks(incluster: InCluster) -> None:
    incluster.submit("logged", "hello", {"steps": 1, "step_seconds": 0.1})
    incluster.wait_phase("logged", {"Succeeded"})
    worker = incluster.get("asynctask", "logged")["status"]["worker"].split("/")[0]
    _assert_json_lines(incluster.kubectl("logs", worker).stdout, "worker")
    (operator,) = incluster.pods("operator")
    _assert_json_lines(incluster.kubectl("logs", operator["metadata"]["name"]).stdout, "operator")
