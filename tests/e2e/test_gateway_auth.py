"""Who may do what through the gateway, under the real RBAC authorizer, and what a bad body
gets: a problem, and nothing created.

The callers are ServiceAccounts of the first served namespace: ``writer`` (every verb on
asynctasks there) and ``reader`` (get, list, watch there). The gateway acts with the chart's
gateway ServiceAccount, which may do everything on asynctasks in both served namespaces: only
the SubjectAccessReview for the caller stands between a caller and the second namespace.
"""

from __future__ import annotations

import base64
import json
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from testbed import ControlPlane
from testbed._proc import free_port
from tests.e2e.gateway_client import Gateway, StreamRefused, count_tasks, gateway_ready
from tests.e2e.system import running

if TYPE_CHECKING:
    from tests.e2e.gateway_client import Answer

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures"]  # gateway, gateway_worker


def unauthorized(answer: Answer) -> None:
    assert answer.status == 401, answer.body
    assert answer.problem["reason"] == "Unauthorized"
    assert answer.headers["www-authenticate"].startswith("Bearer")


def forbidden(answer: Answer, verb: str) -> None:
    assert answer.status == 403, answer.body
    assert f"cannot {verb} asynctasks.asynctask.dev" in answer.problem["detail"]


def test_no_token_or_a_bad_token_is_401_and_creates_nothing(
    control_plane: ControlPlane, gateway: Gateway
) -> None:
    before = count_tasks(control_plane, gateway.namespace)
    body = {"queue": "gw-unserved"}
    unauthorized(gateway.call("POST", gateway.tasks(), body, token=None))
    unauthorized(gateway.call("POST", gateway.tasks(), body, token="not-a-token"))
    unauthorized(gateway.call("GET", gateway.tasks(), token="not-a-token"))
    unauthorized(
        gateway.call("GET", gateway.tasks(), headers={"Authorization": "Basic eDp5"}, token=None)
    )
    # Never from the URL: a token in the query string is ignored.
    token = gateway.tokens["writer"]
    unauthorized(gateway.call("GET", f"{gateway.tasks()}?access_token={token}", token=None))
    assert count_tasks(control_plane, gateway.namespace) == before


def test_a_reader_can_get_list_and_wait_but_not_submit_cancel_or_delete(
    control_plane: ControlPlane, gateway: Gateway
) -> None:
    created = gateway.call("POST", gateway.tasks(), {"queue": "gw-unserved"})
    path = created.headers["location"]
    assert gateway.call("GET", path, token="reader").status == 200
    assert gateway.call("GET", gateway.tasks(), token="reader").status == 200
    assert gateway.call("GET", f"{path}/wait?timeout=1s", token="reader").status == 200
    before = count_tasks(control_plane, gateway.namespace)
    forbidden(
        gateway.call("POST", gateway.tasks(), {"queue": "gw-unserved"}, token="reader"), "create"
    )
    forbidden(
        gateway.call(
            "POST",
            f"{gateway.tasks()}:batch",
            {"tasks": [{"queue": "gw-unserved"}]},
            token="reader",
        ),
        "create",
    )
    forbidden(gateway.call("POST", f"{path}/cancel", token="reader"), "patch")
    forbidden(gateway.call("DELETE", path, token="reader"), "delete")
    assert count_tasks(control_plane, gateway.namespace) == before
    assert gateway.call("GET", path).json()["name"] == created.json()["name"]  # not cancelled
    obj_cancel = control_plane.kubectl(
        "get",
        "asynctask",
        created.json()["name"],
        "-n",
        gateway.namespace,
        "-o",
        "jsonpath={.spec.cancel}",
    )
    assert obj_cancel.stdout == ""


def test_a_caller_of_namespace_a_is_refused_in_namespace_b(
    control_plane: ControlPlane, gateway: Gateway
) -> None:
    task = control_plane.kubectl(
        "create",
        "-n",
        gateway.other,
        "-o",
        "name",
        "-f",
        "-",
        input='{"apiVersion": "asynctask.dev/v1alpha1", "kind": '
        '"AsyncTask", "metadata": {"name": "in-b"}, '
        '"spec": {"queue": "gw-unserved"}}',
    )
    assert task.returncode == 0
    other = gateway.tasks(gateway.other)
    for caller in ("reader", "writer"):
        forbidden(gateway.call("GET", f"{other}/in-b", token=caller), "get")
        forbidden(gateway.call("GET", other, token=caller), "list")
        forbidden(gateway.call("GET", f"{other}/in-b/wait?timeout=1s", token=caller), "get")
        with pytest.raises(StreamRefused) as info:
            next(gateway.events(f"{other}/in-b/events", token=caller))
        assert info.value.status == 403
    forbidden(gateway.call("POST", other, {"queue": "gw-unserved"}), "create")
    forbidden(gateway.call("POST", f"{other}/in-b/cancel"), "patch")
    assert count_tasks(control_plane, gateway.other) == 1
    # A namespace the gateway does not serve: the access review refuses first, so
    # nothing about the namespace leaks.
    outside = gateway.call("GET", gateway.tasks("kube-system"), token="writer")
    assert outside.status == 403


BAD_BODIES: list[tuple[str, Any, int, str]] = [
    (
        "wrong types",
        {"queue": "q", "timeoutSeconds": "soon", "retries": [1]},
        422,
        "timeoutSeconds",
    ),
    ("unknown field", {"queue": "q", "urgency": 5}, 422, "urgency"),
    ("priority out of range", {"queue": "q", "priority": 101}, 422, "priority"),
    ("bad label", {"queue": "q", "labels": {"a": "x" * 64}}, 422, "labels.a"),
    ("not an object", ["queue", "q"], 422, ""),
    ("oversized request", {"queue": "q", "request": "x" * (300 * 1024)}, 413, ""),
    ("invalid webhook", {"queue": "q", "webhook": {"url": "ftp://h.example"}}, 422, "webhook.url"),
    ("webhook without url", {"queue": "q", "webhook": {}}, 422, "webhook.url"),
    (
        "label value the apiserver refuses",
        {"queue": "q", "labels": {"a": "bad value!"}},
        422,
        "metadata.labels",
    ),
]


@pytest.mark.parametrize(
    ("what", "body", "status", "field"), BAD_BODIES, ids=[b[0] for b in BAD_BODIES]
)
def test_bad_bodies_get_a_problem_and_create_nothing(
    control_plane: ControlPlane, gateway: Gateway, what: str, body: Any, status: int, field: str
) -> None:
    before = count_tasks(control_plane, gateway.namespace)
    answer = gateway.call("POST", gateway.tasks(), body)
    problem = answer.problem
    print(what, problem)
    assert answer.status == status
    if field:
        assert any(c["field"] == field for c in problem["causes"]), problem
    assert count_tasks(control_plane, gateway.namespace) == before


def test_the_apiservers_message_passes_through_verbatim(gateway: Gateway) -> None:
    problem = gateway.call(
        "POST", gateway.tasks(), {"queue": "q", "labels": {"a": "bad value!"}}
    ).problem
    assert problem["reason"] == "Invalid"
    assert problem["detail"].startswith('AsyncTask.asynctask.dev "task-')
    assert 'metadata.labels: Invalid value: "bad value!"' in problem["detail"]
    assert problem["type"] == "https://asynctask.dev/problems/invalid"


def test_malformed_and_oversized_bodies(control_plane: ControlPlane, gateway: Gateway) -> None:
    before = count_tasks(control_plane, gateway.namespace)
    assert gateway.call("POST", gateway.tasks(), raw=b"{not json").problem["status"] == 400
    huge = gateway.call(
        "POST", gateway.tasks(), raw=b'{"queue": "q", "x": "' + b"y" * (2 * 1024 * 1024) + b'"}'
    )
    assert huge.status == 413 and huge.problem["reason"] == "RequestEntityTooLarge"
    assert (
        gateway.call("POST", f"{gateway.tasks()}:batch", {"tasks": [{"queue": "q"}] * 501}).status
        == 400
    )
    bad_key = gateway.call(
        "POST", gateway.tasks(), {"queue": "q"}, headers={"Idempotency-Key": '""'}
    )
    assert bad_key.status == 400
    assert count_tasks(control_plane, gateway.namespace) == before


def apiserver_status(cp: ControlPlane, token: str, namespace: str) -> int:
    """The apiserver's answer to a list of asynctasks with ``token`` (and nothing else)."""
    cluster = json.loads(
        cp.kubectl("config", "view", "--raw", "--minify", "--flatten", "-o", "json").stdout
    )["clusters"][0]["cluster"]
    ctx = ssl.create_default_context(
        cadata=base64.b64decode(cluster["certificate-authority-data"]).decode()
    )
    request = urllib.request.Request(
        f"{cluster['server']}/apis/asynctask.dev/v1alpha1/namespaces/{namespace}/asynctasks",
        headers={"Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, context=ctx, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_token_audiences_and_anonymous_callers_are_configurable(
    control_plane: ControlPlane, gateway: Gateway, tmp_path: Path
) -> None:
    """A second gateway that accepts only tokens minted for it (audience
    ``asynctask-gateway``) and lets callers without a token in as system:anonymous, who are
    then reviewed like anyone (and may do nothing here)."""
    port = free_port()
    env = dict(
        gateway.process.env,
        ASYNCTASK_GATEWAY_PORT=str(port),
        ASYNCTASK_GATEWAY_AUDIENCES="asynctask-gateway",
        ASYNCTASK_GATEWAY_ALLOW_ANONYMOUS="true",
    )
    with running(
        "gateway-audience",
        [sys.executable, "-m", "asynctask_gateway"],
        env,
        tmp_path,
        ready=gateway_ready(port),
    ):
        other = Gateway(
            gateway.process,
            port,
            gateway.namespace,
            gateway.other,
            gateway.identity,
            dict(gateway.tokens),
        )
        minted = control_plane.kubectl(
            "create",
            "token",
            "reader",
            "-n",
            gateway.namespace,
            "--audience=asynctask-gateway",
            "--duration=10m",
        ).stdout.strip()
        assert other.call("GET", other.tasks(), token=minted).status == 200
        # A token for the apiserver's own audience is refused by this gateway...
        unauthorized(other.call("GET", other.tasks(), token="reader"))
        # ...and one minted for the gateway is refused by the apiserver itself.
        assert apiserver_status(control_plane, minted, gateway.namespace) == 401
        assert apiserver_status(control_plane, gateway.tokens["reader"], gateway.namespace) == 200
        anonymous = other.call("GET", other.tasks(), token=None)
        forbidden(anonymous, "list")
        assert "system:anonymous" in anonymous.problem["detail"]
