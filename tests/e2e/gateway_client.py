"""e2e support for the HTTP gateway: small HTTP and SSE clients of a gateway process, callers'
ServiceAccounts with chosen rights, and workers for the gateway tests' handlers
(tests/e2e/gateway_app.py). The fixtures are in gateway_fixtures.py."""

from __future__ import annotations

import contextlib
import http.client
import json
import sys
import time
import urllib.parse
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed import ControlPlane, RabbitMQ
from testbed._proc import free_port
from tests.e2e.chart import GatewayIdentity
from tests.e2e.system import Process, running, system_env, worker_ready

#: What a caller's Role grants its verbs on (the gateway's namespaced resources).
CALLER_RESOURCES = ("asynctasks.asynctask.dev", "asynctaskschedules.asynctask.dev")
#: The rights a caller's Role grants on asynctasks and asynctaskschedules, by kind of caller.
CALLER_VERBS = {
    "writer": ["get", "list", "watch", "create", "patch", "delete"],
    "reader": ["get", "list", "watch"],
}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type") == "application/problem+json", self.headers
        doc: dict[str, Any] = self.json()
        assert doc["status"] == self.status
        return doc


@dataclass
class Event:
    id: str | None = None
    event: str = "message"
    data: str = ""
    received: float = 0.0  # time.monotonic() when read

    @property
    def view(self) -> dict[str, Any]:
        doc: dict[str, Any] = json.loads(self.data)
        return doc


@dataclass
class Gateway:
    """The gateway process and what a test needs to call it."""

    process: Process
    port: int
    namespace: str  # served; callers have rights here
    other: str  # served too; callers have no rights here
    identity: GatewayIdentity
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tasks(self, ns: str | None = None) -> str:
        return f"/v1/namespaces/{ns or self.namespace}/tasks"

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "writer",
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
        timeout: float = 70,
    ) -> Answer:
        """One request; ``token`` names a caller (``None``: no Authorization header)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {self.tokens.get(token, token)}"
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        try:
            conn.request(method, path, body=data, headers=all_headers)
            resp = conn.getresponse()
            return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
        finally:
            conn.close()

    def events(
        self,
        path: str,
        *,
        token: str = "writer",
        last_event_id: str | None = None,
        timeout: float = 60,
    ) -> Generator[Event, None, None]:
        """The events of one SSE stream, as they arrive, until the server closes it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        headers = {
            "Authorization": f"Bearer {self.tokens.get(token, token)}",
            "Accept": "text/event-stream",
        }
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        try:
            if resp.status != 200:
                raise StreamRefused(resp.status, resp.read())
            assert resp.getheader("Content-Type") == "text/event-stream"
            yield from _parse(resp)
        finally:
            conn.close()


class StreamRefused(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(f"{status}: {body[:300]!r}")
        self.status = status


def _parse(resp: http.client.HTTPResponse) -> Iterator[Event]:
    current = Event()
    while True:
        raw = resp.readline()
        if not raw:
            return
        line = raw.decode().rstrip("\n")
        if line == "":
            if current.data or current.id is not None:
                current.received = time.monotonic()
                yield current
            current = Event()
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "id":
                current.id = value
            elif name == "event":
                current.event = value
            elif name == "data":
                current.data = f"{current.data}\n{value}" if current.data else value


def grant(
    cp: ControlPlane,
    namespace: str,
    sa: str,
    verbs: list[str],
    resources: tuple[str, ...] = CALLER_RESOURCES,
) -> str:
    """A ServiceAccount in ``namespace`` with ``verbs`` on ``resources`` (asynctasks and
    asynctaskschedules) there; its token."""
    cp.kubectl("create", "serviceaccount", sa, "-n", namespace)
    cp.kubectl(
        "create",
        "role",
        f"{sa}-tasks",
        "-n",
        namespace,
        f"--verb={','.join(verbs)}",
        *(f"--resource={r}" for r in resources),
    )
    cp.kubectl(
        "create",
        "rolebinding",
        f"{sa}-tasks",
        "-n",
        namespace,
        f"--role={sa}-tasks",
        f"--serviceaccount={namespace}:{sa}",
    )
    return cp.kubectl("create", "token", sa, "-n", namespace, "--duration=1h").stdout.strip()


@contextlib.contextmanager
def grant_queues(cp: ControlPlane, namespace: str, sa: str, verbs: list[str]) -> Iterator[None]:
    """``verbs`` on the cluster-scoped asyncqueues for the ServiceAccount ``sa`` of
    ``namespace`` (a ClusterRole and its binding, removed afterwards: they outlive the
    namespace)."""
    name = f"{namespace}-{sa}-queues"
    cp.kubectl("create", "clusterrole", name, f"--verb={','.join(verbs)}", "--resource=asyncqueues")
    cp.kubectl(
        "create",
        "clusterrolebinding",
        name,
        f"--clusterrole={name}",
        f"--serviceaccount={namespace}:{sa}",
    )
    try:
        yield
    finally:
        for kind in ("clusterrolebinding", "clusterrole"):
            cp.kubectl("delete", kind, name, "--wait=false", check=False)


def gateway_ready(port: int) -> Callable[[], bool]:
    """Ready as its probe says: ``/readyz`` answers 200 once its watch cache has synced."""

    def ready() -> bool:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        except OSError:
            return False

    return ready


def count_tasks(cp: ControlPlane, namespace: str) -> int:
    out = cp.kubectl("get", "asynctasks", "-n", namespace, "-o", "json").stdout
    return len(json.loads(out)["items"])


def sse_path(gw: Gateway, name: str) -> str:
    return f"{gw.tasks()}/{urllib.parse.quote(name)}/events"


def gateway_app_worker(cp: ControlPlane, rabbitmq: RabbitMQ, queues: str, folder: Path) -> Any:
    port = free_port()
    return running(
        f"worker-{queues}",
        [
            sys.executable,
            "-m",
            "asynctask_worker",
            "tests.e2e.gateway_app:app",
            "--concurrency",
            "4",
            "--queues",
            queues,
            "--metrics-port",
            str(port),
        ],
        system_env(cp, rabbitmq),
        folder,
        ready=worker_ready(port),
    )
