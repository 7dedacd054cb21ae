"""The HTTP gateway end to end: a gateway process acting with the chart's ServiceAccount token
and RBAC, on the real control plane, with the operator, RabbitMQ and workers running.

Submit, get, list, batch, wait, cancel, delete, probes, metrics and the OpenAPI document;
the SSE and long-poll tests are in test_gateway_streams.py, authn/authz and bad bodies in
test_gateway_auth.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from testbed import ControlPlane
from tests.e2e.system import Process
from tests.e2e.tasks import get, wait_phase

if TYPE_CHECKING:
    from tests.e2e.gateway_client import Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures"]  # gateway, gateway_worker
REPO = Path(__file__).resolve().parents[2]


def readme_curl() -> str:
    """The README's HTTP API example, the block after the marker comment."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- gateway-curl -->\s*```sh\n(.*?)```", text, re.S)
    assert match, "README: no ```sh block after <!-- gateway-curl -->"
    return match.group(1)


def test_probes_metrics_and_the_served_openapi_document(gateway: Gateway) -> None:
    assert gateway.call("GET", "/healthz", token=None).status == 200
    assert gateway.call("GET", "/readyz", token=None).status == 200
    metrics = gateway.call("GET", "/metrics", token=None).body.decode()
    for name in (
        "asynctask_gateway_cache_tasks",
        "asynctask_gateway_open_streams",
        "asynctask_gateway_open_waits",
        "asynctask_gateway_requests_total",
    ):
        assert name in metrics
    served = gateway.call("GET", "/openapi.json", token=None).json()
    assert served == json.loads((REPO / "docs" / "openapi.json").read_text())


def test_the_readme_curl_submits_and_waits_for_the_result(
    control_plane: ControlPlane, gateway: Gateway, worker: Process
) -> None:
    env = {
        **control_plane.env(),
        "TOKEN": gateway.tokens["writer"],
        "GATEWAY": gateway.url,
        "NS": gateway.namespace,
    }
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", readme_curl()],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    print(proc.stdout, proc.stderr)
    assert proc.returncode == 0
    view = json.loads(proc.stdout.strip().splitlines()[-1])
    assert view["phase"] == "Succeeded" and view["done"] is True
    assert view["result"] == {"greeting": "Hello, HTTP!", "steps": 5}
    # The task is a real AsyncTask, stamped with who submitted it.
    obj = get(control_plane, gateway.namespace, view["name"])
    assert (
        obj["metadata"]["annotations"]["asynctask.dev/created-by"]
        == f"system:serviceaccount:{gateway.namespace}:writer"
    )


def test_submit_answers_202_then_get_polls_with_etag(
    control_plane: ControlPlane, gateway: Gateway, gateway_worker: Process
) -> None:
    answer = gateway.call(
        "POST",
        gateway.tasks(),
        {"queue": "gw-sleepy", "request": {"seconds": 1}, "labels": {"app": "etag"}},
    )
    assert answer.status == 202, answer.body
    view = answer.json()
    assert answer.headers["location"] == f"{gateway.tasks()}/{view['name']}"
    assert answer.headers["retry-after"] == "1"
    assert view["name"].startswith("task-") and view["done"] is False
    assert set(view) == {
        "name",
        "namespace",
        "uid",
        "phase",
        "done",
        "progress",
        "message",
        "result",
        "error",
        "attempts",
        "createdAt",
        "startTime",
        "completionTime",
        "resourceVersion",
        "queue",
        "notBefore",
        "priority",
        "reason",
        "archived",
        "requestRef",
        "resultRef",
    }
    assert view["queue"] == "gw-sleepy" and view["archived"] is False
    wait_phase(control_plane, gateway.namespace, view["name"], "Succeeded")
    path = answer.headers["location"]
    final = gateway.call("GET", path)
    while (
        final.json()["resourceVersion"]
        != get(control_plane, gateway.namespace, view["name"])["metadata"]["resourceVersion"]
    ):
        final = gateway.call("GET", path)  # the cache catches up with the last write
    assert final.status == 200 and final.json()["result"] == "slept"
    assert final.headers["etag"] == f'"{final.json()["resourceVersion"]}"'
    assert "retry-after" not in final.headers  # done: nothing to poll for
    again = gateway.call("GET", path, headers={"If-None-Match": final.headers["etag"]})
    assert again.status == 304 and again.body == b""
    missing = gateway.call("GET", f"{gateway.tasks()}/no-such-task")
    assert missing.status == 404 and missing.problem["reason"] == "NotFound"


def test_prefer_wait_answers_200_with_the_final_view(
    gateway: Gateway, gateway_worker: Process
) -> None:
    answer = gateway.call(
        "POST",
        gateway.tasks(),
        {"queue": "gw-sleepy", "request": {"seconds": 0.5}},
        headers={"Prefer": "respond-async, wait=20"},
    )
    assert answer.status == 200, answer.body
    assert answer.headers["preference-applied"] == "wait=20"
    assert answer.json()["phase"] == "Succeeded" and answer.json()["done"] is True
    # Not done within the wait: 202 with the latest view.
    slow = gateway.call(
        "POST",
        gateway.tasks(),
        {"queue": "gw-sleepy", "request": {"seconds": 30}},
        headers={"Prefer": "wait=1"},
    )
    assert slow.status == 202 and slow.json()["done"] is False
    gateway.call("POST", f"{slow.headers['location']}/cancel")


def test_idempotency_key_returns_the_same_task(
    control_plane: ControlPlane, gateway: Gateway
) -> None:
    body = {"queue": "gw-unserved", "request": {"n": 1}}
    key = {"Idempotency-Key": '"order-42"'}
    first = gateway.call("POST", gateway.tasks(), body, headers=key)
    retried = gateway.call("POST", gateway.tasks(), body, headers=key)
    assert first.status == retried.status == 202, (first.body, retried.body)
    assert first.json()["uid"] == retried.json()["uid"]
    assert first.json()["name"].startswith("t-")
    other = gateway.call("POST", gateway.tasks(), {**body, "request": {"n": 2}}, headers=key)
    assert other.status == 422 and other.problem["reason"] == "IdempotencyKeyReused"
    names = json.loads(
        control_plane.kubectl("get", "asynctasks", "-n", gateway.namespace, "-o", "json").stdout
    )["items"]
    assert [n["metadata"]["name"] for n in names].count(first.json()["name"]) == 1
    # Another caller with the same key gets a task of its own.
    assert gateway.call("DELETE", first.headers["location"]).status == 204


def test_list_filters_and_pages_from_the_cache(gateway: Gateway) -> None:
    batch = gateway.call(
        "POST",
        f"{gateway.tasks()}:batch",
        {
            "tasks": [
                {"queue": "gw-list", "labels": {"batch": "list", "n": str(i)}} for i in range(5)
            ]
            + [{"queue": "Not A Queue"}, {"queue": "gw-list", "unknown": 1}]
        },
    )
    assert batch.status == 200, batch.body
    items = batch.json()["items"]
    assert [i["status"] for i in items] == [202] * 5 + [422, 422]
    assert items[5]["problem"]["causes"][0]["field"] == "queue"
    assert items[6]["problem"]["causes"][0]["field"] == "unknown"
    names = sorted(i["task"]["name"] for i in items[:5])
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        query = "?labelSelector=batch%3Dlist&queue=gw-list&limit=2" + (
            f"&continue={token}" if token else ""
        )
        answer = gateway.call("GET", gateway.tasks() + query)
        assert answer.status == 200, answer.body
        page = answer.json()
        seen += [v["name"] for v in page["items"]]
        pages += 1
        if not page["continue"]:
            break
        token = page["continue"]
    assert seen == names and pages == 3
    picked = gateway.call("GET", gateway.tasks() + "?labelSelector=batch%3Dlist,n+in+(1,3)")
    assert len(picked.json()["items"]) == 2
    none = gateway.call("GET", gateway.tasks() + "?labelSelector=batch%3Dlist&phase=Succeeded")
    assert none.json()["items"] == []
    bad = gateway.call("GET", gateway.tasks() + "?phase=Sleeping")
    assert bad.status == 400 and "phase" in bad.problem["detail"]


def test_cancel_a_processing_task_keeps_the_record_then_delete(
    control_plane: ControlPlane, gateway: Gateway, gateway_worker: Process
) -> None:
    view = gateway.call(
        "POST", gateway.tasks(), {"queue": "gw-sleepy", "request": {"seconds": 120}}
    ).json()
    name, path = view["name"], f"{gateway.tasks()}/{view['name']}"
    wait_phase(control_plane, gateway.namespace, name, "Processing")
    cancelled = gateway.call("POST", f"{path}/cancel")
    assert cancelled.status == 202, cancelled.body
    final = gateway.call("GET", f"{path}/wait?timeout=50s")
    assert final.json()["phase"] == "Cancelled" and final.json()["done"] is True
    assert get(control_plane, gateway.namespace, name)["spec"]["cancel"] is True  # kept
    again = gateway.call("POST", f"{path}/cancel")
    assert again.status == 409 and again.problem["reason"] == "AlreadyFinished"
    assert gateway.call("DELETE", path).status == 204
    assert gateway.call("DELETE", path).status == 404
    assert (
        name
        not in control_plane.kubectl(
            "get", "asynctasks", "-n", gateway.namespace, "-o", "name"
        ).stdout
    )


def test_wait_answers_done_false_at_its_timeout(gateway: Gateway) -> None:
    view = gateway.call("POST", gateway.tasks(), {"queue": "gw-unserved"}).json()
    answer = gateway.call("GET", f"{gateway.tasks()}/{view['name']}/wait?timeout=1s")
    assert answer.status == 200 and answer.json()["done"] is False
    assert answer.headers["retry-after"] == "0"
    bad = gateway.call("GET", f"{gateway.tasks()}/{view['name']}/wait?timeout=soon")
    assert bad.status == 400 and bad.problem["reason"] == "BadRequest"
