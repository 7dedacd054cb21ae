"""The gateway's push paths end to end: an SSE stream through a task's whole life (and a
resumption after a dropped connection), a long-poll woken by the watch, per-caller limits."""

from __future__ import annotations

import http.client
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from testbed import ControlPlane, RabbitMQ, wait_until
from tests.e2e.gateway_client import StreamRefused, gateway_app_worker, sse_path
from tests.e2e.system import Process

if TYPE_CHECKING:
    from tests.e2e.gateway_client import Event, Gateway

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures"]  # gateway, gateway_worker
TERMINAL = {"Succeeded", "Failed", "Error", "Cancelled", "TimedOut"}


def submit(gw: Gateway, body: dict[str, Any]) -> dict[str, Any]:
    answer = gw.call("POST", gw.tasks(), body)
    assert answer.status == 202, answer.body
    view: dict[str, Any] = answer.json()
    return view


def test_a_stream_sees_every_phase_and_resumes_after_a_dropped_connection(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    operator: Process,
    gateway: Gateway,
    tmp_path: Path,
) -> None:
    # No worker serves gw-steps yet: the stream is open before the task can start.
    view = submit(gateway, {"queue": "gw-steps", "request": {"steps": 3, "pause": 1.5}})
    path = sse_path(gateway, view["name"])
    stream = gateway.events(path)
    seen: list[Event] = [next(stream)]
    assert seen[0].event == "Pending" and seen[0].view["phase"] == "Pending"
    with gateway_app_worker(control_plane, rabbitmq, "gw-steps", tmp_path):
        for event in stream:  # until the first progress report of the handler
            seen.append(event)
            if (
                event.event == "progress"
                and event.view["phase"] == "Processing"
                and event.view["progress"] > 0
            ):
                break
        stream.close()  # the connection drops
        resumed = list(gateway.events(path, last_event_id=seen[-1].id))
    for event in seen + resumed:
        print(f"{event.event:<11} id={event.id} progress={event.view['progress']}")
        assert event.id == event.view["resourceVersion"]
    ids = [e.id for e in seen]
    assert not {e.id for e in resumed} & set(ids), "the resumed stream repeated events"
    names = [e.event for e in seen + resumed]
    assert "Processing" in names and names[-1] == "Succeeded"
    assert names.index("Processing") < names.index("progress", names.index("Processing"))
    assert resumed[-1].view["result"] == {"steps": 3} and resumed[-1].view["done"] is True
    progress = [e.view["progress"] for e in seen + resumed]
    assert progress == sorted(progress)
    # The task has ended and the client has seen the end: 204 stops a browser's retries.
    with pytest.raises(StreamRefused) as info:
        next(gateway.events(path, last_event_id=resumed[-1].id))
    assert info.value.status == 204
    # A client that has not seen the end gets it at once, and the stream closes.
    assert [e.event for e in gateway.events(path, last_event_id=ids[0])] == ["Succeeded"]


def terminal_seen_at(
    cp: ControlPlane, namespace: str, name: str, out: dict[str, float], ready: threading.Event
) -> None:
    """When this test's own watch sees the terminal status write (monotonic clock)."""
    api = k8s_client.CustomObjectsApi(k8s_config.new_client_from_config(str(cp.kubeconfig)))  # type: ignore[no-untyped-call]
    watcher = k8s_watch.Watch()  # type: ignore[no-untyped-call]
    ready.set()
    for event in watcher.stream(  # type: ignore[no-untyped-call]
        api.list_namespaced_custom_object,
        "asynctask.dev",
        "v1alpha1",
        namespace,
        "asynctasks",
        field_selector=f"metadata.name={name}",
        timeout_seconds=60,
    ):
        if (event["object"].get("status") or {}).get("phase") in TERMINAL:
            out["watch"] = time.monotonic()
            watcher.stop()  # type: ignore[no-untyped-call]


def test_a_long_poll_answers_at_the_terminal_status_write(
    control_plane: ControlPlane, gateway: Gateway, gateway_worker: Process
) -> None:
    view = submit(gateway, {"queue": "gw-sleepy", "request": {"seconds": 2}})
    times: dict[str, float] = {}
    ready = threading.Event()
    watcher = threading.Thread(
        target=terminal_seen_at,
        daemon=True,
        args=(control_plane, gateway.namespace, view["name"], times, ready),
    )
    watcher.start()
    ready.wait(10)
    started = time.monotonic()
    answer = gateway.call("GET", f"{gateway.tasks()}/{view['name']}/wait?timeout=30s")
    times["answer"] = time.monotonic()
    watcher.join(30)
    assert answer.status == 200 and answer.json()["phase"] == "Succeeded", answer.body
    delay = times["answer"] - times["watch"]
    print(
        f"wait answered {delay * 1000:+.0f} ms after a watch saw the terminal write "
        f"(the wait was open {times['answer'] - started:.1f} s)"
    )
    assert started < times["watch"], "the wait was not open before the task ended"
    assert delay < 0.2  # woken by the cache's watch, not by a polling loop


def open_waits(gw: Gateway) -> float:
    text = gw.call("GET", "/metrics", token=None).body.decode()
    line = next(x for x in text.splitlines() if x.startswith("asynctask_gateway_open_waits "))
    return float(line.split()[1])


def test_per_caller_limits_answer_429_with_retry_after(gateway: Gateway) -> None:
    view = submit(gateway, {"queue": "gw-unserved"})
    path = f"{gateway.tasks()}/{view['name']}"
    # The fixture allows 3 waits and 3 streams per caller.
    waits = [
        threading.Thread(target=gateway.call, args=("GET", f"{path}/wait?timeout=6s"))
        for _ in range(3)
    ]
    for thread in waits:
        thread.start()
    wait_until("3 open waits", lambda: open_waits(gateway) >= 3, timeout=10)
    refused = gateway.call("GET", f"{path}/wait?timeout=6s")
    assert refused.status == 429 and refused.headers["retry-after"] == "5"
    assert refused.problem["reason"] == "TooManyRequests"
    other = gateway.call("GET", f"{path}/wait?timeout=1s", token="reader")
    assert other.status == 200  # another caller has limits of its own
    streams = [gateway.events(f"{path}/events") for _ in range(3)]
    for stream in streams:
        assert next(stream).event == "Pending"
    with pytest.raises(StreamRefused) as info:
        next(gateway.events(f"{path}/events"))
    assert info.value.status == 429
    for stream in streams:
        stream.close()
    for thread in waits:
        thread.join(15)
    wait_until("the waits to close", lambda: open_waits(gateway) == 0, timeout=10)


def test_a_quiet_stream_sends_keepalive_comments(gateway: Gateway) -> None:
    view = submit(gateway, {"queue": "gw-unserved"})
    conn = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    conn.request(
        "GET",
        f"{gateway.tasks()}/{view['name']}/events",
        headers={"Authorization": f"Bearer {gateway.tokens['writer']}"},
    )
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("Cache-Control") == "no-cache"
    lines = []
    try:
        while b": keepalive\n" not in lines:
            lines.append(resp.readline())
    finally:
        conn.close()
    assert lines[0] == b"retry: 3000\n"


def test_a_task_created_with_kubectl_streams_and_a_deletion_ends_the_stream(
    control_plane: ControlPlane, gateway: Gateway
) -> None:
    """Tasks need not come through the gateway; read at once after kubectl created it (the
    cache may not have seen it yet), then deleted while a client follows it."""
    control_plane.kubectl(
        "create",
        "-n",
        gateway.namespace,
        "-f",
        "-",
        input=(
            '{"apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTask", '
            '"metadata": {"name": "from-kubectl"}, "spec": {"queue": "gw-unserved"}}'
        ),
    )
    path = f"{gateway.tasks()}/from-kubectl"
    assert gateway.call("GET", path).status == 200
    stream = gateway.events(f"{path}/events")
    assert next(stream).view["name"] == "from-kubectl"
    control_plane.kubectl("delete", "asynctask", "from-kubectl", "-n", gateway.namespace)
    rest = list(stream)
    assert rest[-1].event == "deleted", [e.event for e in rest]
    assert gateway.call("GET", path).status == 404
    assert gateway.call("GET", f"{path}/wait?timeout=1s").status == 404
