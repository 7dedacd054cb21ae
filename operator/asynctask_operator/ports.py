"""The operator's edges as protocols: what the task logic needs of Kubernetes and RabbitMQ.

:class:`apiserver.kube.Kube` and :class:`broker.Broker` implement them; unit tests give
fakes that record the calls (as sample-controller's fake clientsets do), so the task logic is
tested without a cluster or a broker.
"""

from __future__ import annotations

from typing import Any, Protocol

from asynctask_operator.broker import Delivery
from asynctask_worker.messages import ControlMessage, TaskMessage, TaskRef


class TaskApi(Protocol):
    """AsyncTask objects: read one, write its status, delete it."""

    async def get(self, namespace: str, name: str) -> dict[str, Any]: ...

    async def replace_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> dict[str, Any]: ...

    async def delete(self, namespace: str, name: str, uid: str) -> None: ...


class EventApi(Protocol):
    async def create_event(self, namespace: str, body: dict[str, Any]) -> None: ...


class SecretApi(Protocol):
    async def read_secret_key(self, namespace: str, name: str, key: str) -> bytes: ...


class OperatorApi(TaskApi, EventApi, SecretApi, Protocol):
    """Every call the task logic makes to Kubernetes (the autoscaler's are its own)."""


class TaskBroker(Protocol):
    """Task and control messages out; status deliveries settled."""

    async def publish_task(self, msg: TaskMessage) -> None: ...

    async def publish_control(self, msg: ControlMessage) -> None: ...

    def ack(self, delivery: Delivery) -> None: ...

    def refuse(self, delivery: Delivery, reason: str, detail: str) -> None:
        """Dead-letter ``delivery`` with why in its headers; it is acked once that is done."""
        ...


class EventSink(Protocol):
    """Kubernetes Events of what happens to a task (:class:`kube_events.EventRecorder`)."""

    def record(self, ref: TaskRef, reason: str, message: str) -> None: ...
