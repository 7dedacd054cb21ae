"""Schedules and queues through the gateway, under the real RBAC authorizer: each route does
what it says on the real apiserver, a caller without the verb gets 403 and changes nothing,
and a caller of one namespace is refused in another.

The gateway is one of its own (``own_gateway``: the chart's ServiceAccount and RBAC), serving
namespaces outside the shared operator's ``t-*``: no operator acts on these schedules, so
the status the tests read is the one they write themselves on the status subresource (the
gateway only reads it; the operator's own status is checked end to end after the merge).
AsyncQueues are cluster-scoped: an operator, if one runs in the session, may write a queue's
status too, so the queue test compares the gateway's answer with the object as the
apiserver holds it at the same resourceVersion.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from asynctask_worker.resource_views import queue_view
from testbed import ControlPlane
from testbed._proc import wait_until
from tests.e2e.gateway_client import CALLER_VERBS, Gateway, count_tasks, grant, grant_queues

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.openapi_fixtures"]  # own_gateway


@pytest.fixture(scope="module")
def gw(control_plane: ControlPlane, own_gateway: Gateway) -> Gateway:
    """own_gateway with two more callers in its namespace: ``reader`` (get, list, watch on
    tasks and schedules) and ``tasker`` (every verb on tasks, none on schedules)."""
    ns = own_gateway.namespace
    own_gateway.tokens["reader"] = grant(control_plane, ns, "reader", CALLER_VERBS["reader"])
    own_gateway.tokens["tasker"] = grant(
        control_plane, ns, "tasker", CALLER_VERBS["writer"], ("asynctasks.asynctask.dev",)
    )
    return own_gateway


def schedules(gw: Gateway, ns: str | None = None) -> str:
    return f"/v1/namespaces/{ns or gw.namespace}/schedules"


def schedule_body(name: str, **more: Any) -> dict[str, Any]:
    return {
        "name": name,
        "intervalSeconds": 3600,
        "template": {
            "metadata": {"labels": {"team": "a"}},
            "spec": {"queue": "gws-none", "request": {"n": 1}, "priority": 5},
        },
        **more,
    }


def kube_json(cp: ControlPlane, *args: str) -> Any:
    return json.loads(cp.kubectl("get", *args, "-o", "json").stdout)


def forbidden(answer: Any, verb: str, resource: str) -> None:
    assert answer.status == 403, answer.body
    assert f"cannot {verb} {resource}.asynctask.dev" in answer.problem["detail"]


def test_a_schedule_is_created_read_suspended_resumed_triggered_and_deleted(
    control_plane: ControlPlane, gw: Gateway
) -> None:
    cp, ns, name = control_plane, gw.namespace, f"nightly-{uuid.uuid4().hex[:6]}"
    created = gw.call("POST", schedules(gw), schedule_body(name))
    assert created.status == 201, created.body
    assert created.headers["location"] == f"{schedules(gw)}/{name}"
    view = created.json()
    assert (view["name"], view["intervalSeconds"], view["queue"]) == (name, 3600, "gws-none")
    assert view["suspend"] is False and view["concurrencyPolicy"] == "Allow"  # CRD defaults
    assert gw.call("POST", schedules(gw), schedule_body(name)).problem["reason"] == "AlreadyExists"
    listed = gw.call("GET", schedules(gw)).json()["items"]
    assert name in [s["name"] for s in listed]

    # The status as an operator would write it: the gateway reads it as it is.
    status = {
        "lastScheduleTime": "2026-12-05T10:00:00Z",
        "nextScheduleTime": "2026-12-05T11:00:00Z",
        "active": [{"name": f"{name}-1764928800", "uid": "u-1"}],
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Scheduled",
                "message": "next slot at 11:00",
                "lastTransitionTime": "2026-12-05T10:00:00Z",
            }
        ],
    }
    cp.kubectl(
        "patch", "asynctaskschedule", name, "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    got = gw.call("GET", f"{schedules(gw)}/{name}").json()
    assert got["nextScheduleTime"] == "2026-12-05T11:00:00Z"
    assert got["active"] == [{"name": f"{name}-1764928800", "uid": "u-1"}]
    assert got["ready"]["status"] == "True" and got["ready"]["reason"] == "Scheduled"

    suspended = gw.call("POST", f"{schedules(gw)}/{name}:suspend")
    assert suspended.status == 200 and suspended.json()["suspend"] is True
    assert kube_json(cp, "asynctaskschedule", name, "-n", ns)["spec"]["suspend"] is True
    resumed = gw.call("POST", f"{schedules(gw)}/{name}:resume").json()
    assert resumed["suspend"] is False
    assert gw.call("GET", f"{schedules(gw)}/{name}:resume").status == 405  # not a name

    triggered = gw.call("POST", f"{schedules(gw)}/{name}:trigger")
    assert triggered.status == 202, triggered.body
    task = triggered.json()
    assert task["name"].startswith(f"{name}-manual-") and task["priority"] == 5
    assert triggered.headers["location"] == f"/v1/namespaces/{ns}/tasks/{task['name']}"
    obj = kube_json(cp, "asynctasks.asynctask.dev", task["name"], "-n", ns)
    assert obj["metadata"]["labels"] == {"team": "a", "asynctask.dev/schedule": name}
    assert obj["metadata"]["annotations"]["asynctask.dev/triggered-by"] == "manual"
    (owner,) = obj["metadata"]["ownerReferences"]
    schedule_uid = kube_json(cp, "asynctaskschedule", name, "-n", ns)["metadata"]["uid"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("AsyncTaskSchedule", name, schedule_uid)
    assert owner["controller"] is True
    assert obj["spec"]["request"] == {"n": 1}
    # The schedule's tasks: the tasks list with its label.
    mine = gw.call("GET", f"/v1/namespaces/{ns}/tasks?labelSelector=asynctask.dev/schedule={name}")
    assert [t["name"] for t in mine.json()["items"]] == [task["name"]]

    assert gw.call("DELETE", f"{schedules(gw)}/{name}").status == 204
    assert gw.call("GET", f"{schedules(gw)}/{name}").status == 404
    # The garbage collector follows the ownerReference (kube-controller-manager runs here).
    wait_until(
        "the manual task collected with its schedule",
        lambda: (
            cp.kubectl(
                "get", "asynctasks.asynctask.dev", task["name"], "-n", ns, check=False
            ).returncode
        ),
        timeout=60,  # the collector's graph sync on a loaded 2-core box; usually seconds
    )


BAD_SCHEDULES: list[tuple[str, Any, int, str]] = [
    ("cron and interval", schedule_body("b1", schedule="* * * * *"), 422, ""),
    ("not cron", {**schedule_body("b2"), "intervalSeconds": None, "schedule": "soon"}, 422, ""),
    (
        "a cancel in the template",
        schedule_body("b3", template={"spec": {"queue": "q", "cancel": True}}),
        422,
        "template.spec.cancel",
    ),
    ("name too long", schedule_body("n" * 53), 422, "name"),
    (
        "priority out of range",
        schedule_body("b4", template={"spec": {"queue": "q", "priority": 101}}),
        422,
        "template.spec.priority",
    ),
    ("not an object", ["b5"], 422, ""),
]


@pytest.mark.parametrize(
    ("what", "body", "status", "field"), BAD_SCHEDULES, ids=[b[0] for b in BAD_SCHEDULES]
)
def test_bad_schedules_get_a_problem_and_create_nothing(
    control_plane: ControlPlane, gw: Gateway, what: str, body: Any, status: int, field: str
) -> None:
    answer = gw.call("POST", schedules(gw), body)
    problem = answer.problem
    assert answer.status == status, problem
    assert problem["detail"].startswith("the schedule"), problem
    if field:
        assert any(c["field"] == field for c in problem["causes"]), problem
    items = kube_json(control_plane, "asynctaskschedules", "-n", gw.namespace)["items"]
    assert not [o for o in items if o["metadata"]["name"].startswith("b")]


def test_the_apiservers_refusal_of_a_schedule_passes_through(gw: Gateway) -> None:
    problem = gw.call(
        "POST", schedules(gw), schedule_body("b6", labels={"a": "bad value!"})
    ).problem
    assert problem["status"] == 422 and problem["reason"] == "Invalid"
    assert problem["detail"].startswith('AsyncTaskSchedule.asynctask.dev "b6"'), problem
    assert 'metadata.labels: Invalid value: "bad value!"' in problem["detail"]


def test_schedule_rights_are_checked_per_verb_and_per_namespace(
    control_plane: ControlPlane, gw: Gateway
) -> None:
    name = f"guarded-{uuid.uuid4().hex[:6]}"
    assert gw.call("POST", schedules(gw), schedule_body(name)).status == 201
    one, tasks_before = f"{schedules(gw)}/{name}", count_tasks(control_plane, gw.namespace)
    assert gw.call("GET", one, token="reader").status == 200
    assert gw.call("GET", schedules(gw), token="reader").status == 200
    forbidden(
        gw.call("POST", schedules(gw), schedule_body("r1"), token="reader"),
        "create",
        "asynctaskschedules",
    )
    forbidden(gw.call("POST", f"{one}:suspend", token="reader"), "patch", "asynctaskschedules")
    forbidden(gw.call("DELETE", one, token="reader"), "delete", "asynctaskschedules")
    # A trigger needs both: get on the schedule and create on asynctasks.
    forbidden(gw.call("POST", f"{one}:trigger", token="reader"), "create", "asynctasks")
    forbidden(gw.call("POST", f"{one}:trigger", token="tasker"), "get", "asynctaskschedules")
    forbidden(gw.call("GET", schedules(gw), token="tasker"), "list", "asynctaskschedules")
    # The writer of the first namespace has no rights in the second.
    other = schedules(gw, gw.other)
    forbidden(gw.call("GET", other), "list", "asynctaskschedules")
    forbidden(gw.call("POST", other, schedule_body(name)), "create", "asynctaskschedules")
    forbidden(gw.call("POST", f"{other}/{name}:trigger"), "get", "asynctaskschedules")
    view = gw.call("GET", one).json()
    assert view["suspend"] is False
    assert count_tasks(control_plane, gw.namespace) == tasks_before
    assert not kube_json(control_plane, "asynctaskschedules", "-n", gw.other)["items"]
    assert gw.call("DELETE", one).status == 204


@pytest.fixture
def queue(control_plane: ControlPlane, gw: Gateway) -> Iterator[str]:
    """An AsyncQueue of this test's own, with a status as the operator writes it; the
    writer may read, pause and resume queues, the reader only read them."""
    name = f"gwq-{uuid.uuid4().hex[:6]}"
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncQueue",
        "metadata": {"name": name},
        "spec": {"maxInFlight": 5, "rateLimit": {"perSecond": 2.5, "burst": 5}},
    }
    control_plane.kubectl("create", "-f", "-", input=json.dumps(manifest))
    status = {"held": 7, "inFlight": 5, "ready": 1, "consumers": 2, "startRate": "2.5"}
    control_plane.kubectl(
        "patch", "asyncqueue", name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    # The writer's rights on queues are own_gateway's; the reader's are this test's.
    with grant_queues(control_plane, gw.namespace, "reader", ["get", "list"]):
        yield name
    control_plane.kubectl("delete", "asyncqueue", name, "--wait=false", check=False)


def test_queues_are_listed_read_paused_and_resumed_with_cluster_wide_rights(
    control_plane: ControlPlane, gw: Gateway, queue: str
) -> None:
    path = f"/v1/queues/{queue}"

    def as_stored() -> bool:
        """The gateway's view is the object's, read before and after at one version."""
        before = kube_json(control_plane, "asyncqueue", queue)
        answer = gw.call("GET", path, token="reader").json()
        after = kube_json(control_plane, "asyncqueue", queue)
        same = before["metadata"]["resourceVersion"] == after["metadata"]["resourceVersion"]
        return same and "held" in after["status"] and answer == queue_view(after).to_json()

    wait_until("the queue read through the gateway as stored", as_stored, timeout=30)
    view = gw.call("GET", path).json()
    assert (view["maxInFlight"], view["rateLimit"]) == (5, {"perSecond": 2.5, "burst": 5})
    listed = gw.call("GET", "/v1/queues", token="reader").json()["items"]
    assert queue in [q["name"] for q in listed]

    forbidden(gw.call("POST", f"{path}:pause", token="reader"), "patch", "asyncqueues")
    assert "(cluster-wide)" in gw.call("POST", f"{path}:pause", token="reader").problem["detail"]
    forbidden(gw.call("GET", "/v1/queues", token="tasker"), "list", "asyncqueues")
    assert kube_json(control_plane, "asyncqueue", queue)["spec"].get("paused") is not True

    paused = gw.call("POST", f"{path}:pause")
    assert paused.status == 200 and paused.json()["paused"] is True
    assert kube_json(control_plane, "asyncqueue", queue)["spec"]["paused"] is True
    assert gw.call("POST", f"{path}:resume").json()["paused"] is False
    assert kube_json(control_plane, "asyncqueue", queue)["spec"]["paused"] is False
    assert gw.call("GET", "/v1/queues/no-such-queue").status == 404
