"""Webhooks end to end: the shared operator POSTs signed CloudEvents to a receiver on
127.0.0.1 (allowed by its ASYNCTASK_WEBHOOK_ALLOWED_CIDRS) and records delivery in status."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from asynctask_operator.webhooks.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from testbed import ControlPlane, wait_until
from tests.e2e.system import Process
from tests.e2e.tasks import create, status, wait_phase
from tests.webhook_hits import Hit

pytestmark = pytest.mark.e2e
KEY = b"webhook-signing-key-for-tests"


@dataclass
class Receiver:
    """An HTTP receiver that records each request; ``fail_first`` requests get a 500."""

    port: int = 0
    fail_first: int = 0
    hits: list[Hit] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return [h.event for h in self.hits]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with rec.lock:
                rec.hits.append(Hit(self.path, dict(self.headers.items()), body))
                fail = len(rec.hits) <= rec.fail_first
            self.send_response(500 if fail else 204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def signing_secret(cp: ControlPlane, ns: str) -> dict[str, str]:
    cp.kubectl(
        "create",
        "-f",
        "-",
        input=json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "hooks", "namespace": ns},
                "data": {"key": base64.b64encode(KEY).decode()},
            }
        ),
    )
    return {"name": "hooks", "key": "key"}


def check_signed_hits(receiver: Receiver) -> None:
    """Every request the receiver got: to /hook, a CloudEvent, signed with KEY (and not
    with another key)."""
    for hit in receiver.hits:
        assert hit.path == "/hook"
        assert hit.headers["Content-Type"].startswith("application/cloudevents+json")
        assert verify_signature(
            KEY, hit.headers[TIMESTAMP_HEADER], hit.body, hit.headers[SIGNATURE_HEADER]
        )
        assert not verify_signature(
            b"another key", hit.headers[TIMESTAMP_HEADER], hit.body, hit.headers[SIGNATURE_HEADER]
        )


def webhook_delivered(cp: ControlPlane, ns: str, name: str, phase: str) -> Callable[[], bool]:
    """Whether the task's status.webhook says the event of ``phase`` was delivered."""
    return lambda: (status(cp, ns, name).get("webhook") or {}).get("lastDeliveredPhase") == phase


def test_each_phase_change_is_posted_signed_and_recorded(
    control_plane: ControlPlane,
    namespace: str,
    operator: Process,
    worker: Process,
    receiver: Receiver,
) -> None:
    ref = signing_secret(control_plane, namespace)
    task = create(
        control_plane,
        namespace,
        "notified",
        queue="hello",
        request={"steps": 1},
        webhook={"url": receiver.url(), "secretRef": ref},
    )
    uid = task["metadata"]["uid"]
    wait_phase(control_plane, namespace, "notified", "Succeeded")
    wait_until("the Succeeded event", lambda: len(receiver.events()) >= 3, 30)
    events = receiver.events()
    assert [e["type"] for e in events] == [
        "dev.asynctask.task.pending",
        "dev.asynctask.task.processing",
        "dev.asynctask.task.succeeded",
    ]
    assert [e["id"] for e in events] == [
        f"{uid}.1.pending",
        f"{uid}.1.processing",
        f"{uid}.1.succeeded",
    ]
    final = events[-1]
    assert final["specversion"] == "1.0"
    assert final["source"] == (
        f"/apis/asynctask.dev/v1alpha1/namespaces/{namespace}/asynctasks/notified"
    )
    assert final["data"]["result"] == {"greeting": "Hello, world!", "steps": 1}
    check_signed_hits(receiver)
    # The outcome of the last event is written to the status once it is settled.
    wait_until(
        "status.webhook",
        webhook_delivered(control_plane, namespace, "notified", "Succeeded"),
        15,
    )
    hook = status(control_plane, namespace, "notified")["webhook"]
    assert hook["delivered"] is True
    assert hook["lastEventId"] == f"{uid}.1.succeeded"
    assert hook["attempts"] == 1
    assert "lastError" not in hook
    # The record costs one status write more than a task without a webhook (3).
    writes = [
        w
        for w in control_plane.writes(namespace)
        if w["resource"] == "asynctasks" and w["name"] == "notified" and w["verb"] != "create"
    ]
    assert len(writes) == 4, writes
    assert all(w["subresource"] == "status" for w in writes)


def test_failed_deliveries_are_retried_with_backoff(
    control_plane: ControlPlane,
    namespace: str,
    operator: Process,
    worker: Process,
    receiver: Receiver,
) -> None:
    receiver.fail_first = 2
    task = create(
        control_plane,
        namespace,
        "retried",
        queue="hello",
        request={"steps": 1},
        webhook={"url": receiver.url()},
    )
    uid = task["metadata"]["uid"]
    wait_phase(control_plane, namespace, "retried", "Succeeded")
    wait_until(
        "every event delivered",
        lambda: (
            receiver.events()[-1:] != []
            and receiver.events()[-1]["type"] == "dev.asynctask.task.succeeded"
        ),
        60,
    )
    ids = [e["id"] for e in receiver.events()]
    # The first event was tried three times (two 500s), then the rest in order, once each.
    assert ids == [f"{uid}.1.pending"] * 3 + [f"{uid}.1.processing", f"{uid}.1.succeeded"]
    attempts = [h.headers["X-AsyncTask-Delivery-Attempt"] for h in receiver.hits[:3]]
    assert attempts == ["1", "2", "3"]
    # Backoff (the operator's base is 1 s, doubled, each wait 50-100% of it): the retries
    # waited at least 0.5 s, then 1 s (a little less allowed for the clock of the receipt).
    first, second = (
        b.at - a.at for a, b in zip(receiver.hits[:2], receiver.hits[1:3], strict=True)
    )
    print(f"\nwebhook retries after {first:.2f}s and {second:.2f}s")
    assert first >= 0.45 and second >= 0.9, (first, second)
    assert SIGNATURE_HEADER not in receiver.hits[0].headers  # no secretRef: unsigned
    wait_until(
        "status.webhook",
        lambda: (
            (status(control_plane, namespace, "retried").get("webhook") or {}).get("delivered")
            is True
        ),
        15,
    )


def test_unsafe_targets_are_refused_and_the_task_goes_on(
    control_plane: ControlPlane, namespace: str, operator: Process, worker: Process
) -> None:
    # Cloud metadata (link-local) is refused whatever the allow-list says about loopback.
    create(
        control_plane,
        namespace,
        "metadata",
        queue="hello",
        request={"steps": 1},
        webhook={"url": "http://169.254.169.254/latest/meta-data/"},
    )
    wait_phase(control_plane, namespace, "metadata", "Succeeded")
    wait_until(
        "the refusal in status.webhook",
        lambda: (
            (status(control_plane, namespace, "metadata").get("webhook") or {})
            .get("lastEventId", "")
            .endswith(".succeeded")
        ),
        30,
    )
    hook = status(control_plane, namespace, "metadata")["webhook"]
    assert hook["delivered"] is False
    assert "lastDeliveredPhase" not in hook
    assert hook["lastError"].startswith("refused:"), hook
    assert "cloud metadata" in hook["lastError"], hook


def test_an_invalid_webhook_is_refused_at_admission(
    control_plane: ControlPlane, namespace: str
) -> None:
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncTask",
        "metadata": {"name": "bad-hook", "namespace": namespace},
        "spec": {"queue": "hello", "webhook": {"url": "ftp://user@example.com/x"}},
    }
    proc = control_plane.kubectl("create", "-f", "-", input=json.dumps(manifest), check=False)
    assert proc.returncode != 0
    assert "spec.webhook.url" in proc.stderr, proc.stderr
