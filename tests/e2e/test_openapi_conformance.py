"""The OpenAPI document says what the gateway does: Schemathesis (property-based API testing)
generates requests from docs/openapi.json and runs every one of its checks on the answers of
the real gateway (the chart's ServiceAccount and RBAC, the real control plane), with a real
token: status codes, content types, headers and bodies as documented, valid data accepted,
invalid data refused, no 5xx, undeclared methods 405, no answer without the token, and the
stateful phase following the document's links (create, then get, wait, cancel, delete).

The seed is fixed and the examples bounded, so a run is repeatable and takes about a minute.
The SSE routes are streamed too: Schemathesis reads the first event (``max-stream-events``)
and checks it against the event schema; their full behaviour is in test_gateway_streams.py.

A second run names a namespace the token has no rights in: every request with the token on
a documented method must be 403, whatever the parameters and bodies.

The queue routes (cluster-scoped AsyncQueues, which the token may read, pause and resume)
are given the name of a queue of the module's own, so they answer its view rather than only
404s for made-up names (Schemathesis warns about operations it cannot reach otherwise); the
result routes likewise are given a task that succeeded with a result stored in the gateway's
bucket (the gateway stores large payloads in the test bed's S3 server).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from testbed import ControlPlane, S3Server

if TYPE_CHECKING:
    from tests.e2e.gateway_client import Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.openapi_fixtures"]  # own_gateway
REPO = Path(__file__).resolve().parents[2]
SEED = 29
#: Long-polls wait this long here (the document allows up to 55 s: the run would be minutes).
WAIT = "100ms"


@pytest.fixture(scope="module")
def own_queue(control_plane: ControlPlane) -> Iterator[str]:
    """An AsyncQueue for the queue routes, with a status as the operator writes it."""
    name = f"oa-q-{uuid.uuid4().hex[:6]}"
    manifest = {"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncQueue"}
    control_plane.kubectl(
        "create", "-f", "-", input=json.dumps({**manifest, "metadata": {"name": name}})
    )
    status = {"held": 3, "inFlight": 1, "startRate": "0.5"}
    control_plane.kubectl(
        "patch", "asyncqueue", name, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": status}),
    )  # fmt: skip
    yield name
    control_plane.kubectl("delete", "asyncqueue", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def stored_result(
    control_plane: ControlPlane, own_gateway: Gateway, s3: S3Server, payload_bucket: str
) -> str:
    """A task that succeeded with a stored result (its status written as the operator
    writes it; no operator serves these namespaces), so the result routes answer 200."""
    ns, name = own_gateway.namespace, f"oa-stored-{uuid.uuid4().hex[:6]}"
    task = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncTask",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"queue": "oa-stored"},
    }
    made = control_plane.kubectl("create", "-o", "json", "-f", "-", input=json.dumps(task))
    uid = json.loads(made.stdout)["metadata"]["uid"]
    body, key = b"stored result bytes\n" * 100, f"asynctask/{ns}/{uid}/result"
    s3.client().put_object(
        Bucket=payload_bucket, Key=key, Body=body, ContentType="application/octet-stream"
    )
    sha256 = hashlib.sha256(body).hexdigest()
    ref = {"bucket": payload_bucket, "key": key, "size": len(body),
           "contentType": "application/octet-stream", "sha256": sha256}  # fmt: skip
    control_plane.kubectl(
        "patch", "asynctask", name, "-n", ns, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"phase": "Succeeded", "resultRef": ref}}),
    )  # fmt: skip
    return name


def config(gateway: Gateway, namespace: str, max_examples: int, queue: str, stored: str) -> str:
    """Schemathesis' configuration (TOML): the seed, the bounds, the token, the namespace."""
    return f"""
seed = {SEED}
max-redirects = 0
request-timeout = 20
max-stream-events = 1
workers = 1

[generation]
max-examples = {max_examples}
deterministic = false

[auth.openapi.bearer]
bearer = "{gateway.tokens["writer"]}"

[parameters]
"path.namespace" = "{namespace}"

[[operations]]
include-path-regex = "^/v1/queues/"
parameters = {{ "path.name" = "{queue}" }}

[[operations]]
include-operation-id = "waitTask"
parameters = {{ "query.timeout" = "{WAIT}" }}

# An Idempotency-Key used before with another body is refused (422 IdempotencyKeyReused): a
# state of the server that no schema can express, so valid data may meet it.
[[operations]]
include-operation-id = "createTask"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

# A task's result exists once the task has succeeded (409 NotFinished before, NoResult after
# another end; ResultNotStored for the URL of an inline result): a state of the server that
# no schema can express. Schemathesis' tasks never run (their queues have no worker).
# The name given is a task that succeeded with a stored result (stored_result), so the routes
# are reached with data too.
[[operations]]
include-operation-id = "getTaskResult"
parameters = {{ "path.name" = "{stored}" }}
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409"]

[[operations]]
include-operation-id = "getTaskResultUrl"
parameters = {{ "path.name" = "{stored}" }}
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409"]

# The history list refuses (400) what no schema can say: a time that matches the RFC 3339
# pattern but is no real date (2026-02-30), since after until, a selector of more than 20
# terms (docs/history.md).
[[operations]]
include-operation-id = "listHistory"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
"""


def schemathesis(
    gateway: Gateway, namespace: str, folder: Path, max_examples: int, queue: str, stored: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """One run of the Schemathesis CLI; its output and the HAR of every exchange."""
    text = config(gateway, namespace, max_examples, queue, stored)
    (folder / "schemathesis.toml").write_text(text)
    har = folder / "exchanges.har"
    started = time.monotonic()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            str(folder / "schemathesis.toml"),
            "--no-color",
            "run",
            str(REPO / "docs" / "openapi.json"),
            "--url",
            gateway.url,
            "--checks",
            "all",
            "--report",
            "har",
            "--report-har-path",
            str(har),
            # The HAR keeps the Authorization header as sent (a token of this test's own
            # throwaway cluster), so the run can tell its token from the ones it made up.
            "--output-sanitize",
            "false",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        cwd=folder,
    )
    print(proc.stdout[-6000:], proc.stderr[-3000:])
    print(f"schemathesis ran {time.monotonic() - started:.1f}s")
    entries: list[dict[str, Any]] = json.loads(har.read_text())["log"]["entries"]
    return proc, entries


def test_schemathesis_finds_the_gateway_as_documented(
    own_gateway: Gateway, own_queue: str, stored_result: str, tmp_path: Path
) -> None:
    proc, entries = schemathesis(
        own_gateway, own_gateway.namespace, tmp_path, 12, own_queue, stored_result
    )
    assert proc.returncode == 0, "Schemathesis reported failures or errors (above)"
    assert "No issues found" in proc.stdout or "0 failures" in proc.stdout.lower()
    statuses = {e["response"]["status"] for e in entries}
    # The run reached the tasks, not only refusals: created, read, cancelled, deleted.
    assert {202, 200, 204}.issubset(statuses), statuses
    assert not any(s >= 500 and s not in (502, 503) for s in statuses), statuses


def test_a_namespace_the_token_may_not_use_answers_only_403(
    own_gateway: Gateway, own_queue: str, stored_result: str, tmp_path: Path
) -> None:
    proc, entries = schemathesis(
        own_gateway, own_gateway.other, tmp_path, 5, own_queue, stored_result
    )
    assert proc.returncode == 0, "Schemathesis reported failures or errors (above)"
    token = f"Bearer {own_gateway.tokens['writer']}"
    seen = 0
    for entry in entries:
        request = entry["request"]
        if "/v1/namespaces/" not in request["url"]:
            continue
        headers = {h["name"].lower(): h["value"] for h in request["headers"]}
        status = entry["response"]["status"]
        if status == 405:  # an undocumented method: refused before anything else
            continue
        if headers.get("authorization") != token:  # none, or one Schemathesis made up
            assert status == 401, (request["method"], request["url"], status)
        else:
            seen += 1
            assert status == 403, (request["method"], request["url"], status)
            assert own_gateway.other in request["url"]
    assert seen > 20
