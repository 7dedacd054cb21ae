"""Fakes shared by the operator's unit tests: they record what the code under test asked."""

from __future__ import annotations

from typing import Any

from asynctask_operator.errors import Gone, Rejected, StoreError, Unavailable
from asynctask_operator.ports import Delivery, StoredObject
from asynctask_worker.messages import ControlMessage, TaskMessage, TaskRef

#: A task, and the status of one of its attempts, as the webhook tests send them.
REF = TaskRef(uid="0f0e-uid", namespace="team-a", name="resize-1")


def status(phase: str, **extra: Any) -> dict[str, Any]:
    return {
        "phase": phase,
        "attempts": 1,
        "progress": 0,
        "message": "m",
        "lastUpdateTime": "2030-01-02T03:04:05Z",
        **extra,
    }


def resolver(table: dict[str, list[str]], calls: list[str] | None = None) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if calls is not None:
            calls.append(host)
        if host not in table:
            raise OSError(f"no such host {host}")
        return table[host]

    return resolve


class FakeApi:
    """The Kubernetes side of the task logic (``ports.OperatorApi``), in memory.

    Holds AsyncTask objects by namespace/name, records every call in the shared ``journal``
    (in order, with the broker's), and can be told to refuse the next status write.
    """

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.writes: list[dict[str, Any]] = []  # every status written, in order
        self.events: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.reject_next: str | None = None
        self.unavailable_next = 0  # status writes to fail as if the apiserver were down

    def add(self, body: dict[str, Any]) -> dict[str, Any]:
        meta = body["metadata"]
        self.objects[(meta["namespace"], meta["name"])] = body
        return body

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        self.journal.append(f"get {name}")
        if (namespace, name) not in self.objects:
            raise Gone(f"{namespace}/{name}")
        return self.objects[(namespace, name)]

    async def replace_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.journal.append(f"write {name} {status.get('phase')}")
        if self.unavailable_next:
            self.unavailable_next -= 1
            raise Unavailable("ClientConnectorError: Cannot connect to host apiserver:443")
        body = self.objects.get((namespace, name))
        if body is None or body["metadata"]["uid"] != uid:
            raise Gone(f"{namespace}/{name}")
        if self.reject_next is not None:
            why, self.reject_next = self.reject_next, None
            raise Rejected(why)
        self.writes.append(status)
        body["status"] = status
        return body

    async def delete(self, namespace: str, name: str, uid: str) -> None:
        self.journal.append(f"delete {name}")
        if self.objects.pop((namespace, name), None) is None:
            raise Gone(f"{namespace}/{name}")
        self.deleted.append(name)

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        self.journal.append(f"event {body['reason']}")
        self.events.append(body)

    async def read_secret_key(self, namespace: str, name: str, key: str) -> bytes:
        raise KeyError(f"Secret {namespace}/{name} has no key {key!r}")


class FakeBroker:
    """The RabbitMQ side of the task logic (``ports.TaskBroker``): records what is sent."""

    def __init__(self, journal: list[str]) -> None:
        self.journal = journal
        self.tasks: list[TaskMessage] = []
        self.controls: list[ControlMessage] = []
        self.acked: list[Delivery] = []
        self.refused: list[tuple[Delivery, str, str]] = []

    async def publish_task(self, msg: TaskMessage) -> None:
        self.journal.append(f"publish {msg.task.name} attempt {msg.attempt}")
        self.tasks.append(msg)

    async def publish_control(self, msg: ControlMessage) -> None:
        self.journal.append(f"control {msg.action} {msg.task.name} {msg.reason}")
        self.controls.append(msg)

    def ack(self, delivery: Delivery) -> None:
        self.acked.append(delivery)

    def refuse(self, delivery: Delivery, reason: str, detail: str) -> None:
        self.refused.append((delivery, reason, detail))


class FakeStore:
    """Object storage (``ports.PayloadStore``) in memory: presigned URLs are fake strings
    naming what they open; objects are (key -> (size, modified)) per bucket."""

    def __init__(self, journal: list[str] | None = None) -> None:
        self.journal = journal if journal is not None else []
        self.objects: dict[tuple[str, str], tuple[int, float]] = {}
        self.presigned: list[str] = []
        self.down = False

    def put(self, bucket: str, key: str, size: int = 1, modified: float = 0.0) -> None:
        self.objects[(bucket, key)] = (size, modified)

    def _check(self) -> None:
        if self.down:
            raise StoreError("Could not connect to the endpoint URL")

    async def presign(self, method: str, bucket: str, key: str) -> str:
        self._check()
        url = f"https://store.test/{bucket}/{key}?method={method}&n={len(self.presigned)}"
        self.presigned.append(url)
        return url

    async def delete(self, bucket: str, key: str) -> None:
        self._check()
        self.journal.append(f"delete s3://{bucket}/{key}")
        self.objects.pop((bucket, key), None)

    async def list_page(
        self, bucket: str, prefix: str, after: str | None
    ) -> tuple[list[StoredObject], bool]:
        self._check()
        keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
        keys = [k for k in keys if after is None or k > after]
        page = [StoredObject(k, *self.objects[(bucket, k)]) for k in keys[:2]]
        return page, len(keys) > 2  # pages of two: the paging is exercised
