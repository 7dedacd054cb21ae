"""The operator's edges as protocols: what the task logic needs of Kubernetes and RabbitMQ.

:class:`apiserver.kube.Kube` and :class:`broker.Broker` implement them; unit tests give
fakes that record the calls (as sample-controller's fake clientsets do), so the task logic is
tested without a cluster or a broker. The words the two sides share live here too (a
:class:`Delivery`, :func:`stop_work`), so that the task logic imports no adapter.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from asynctask_operator.archive.record import ArchiveRecord
from asynctask_worker import topology
from asynctask_worker.messages import ControlMessage, TaskMessage, TaskRef

#: What a control message asks of the workers running a task.
StopAction = Literal["cancel", "timeout"]


@dataclass(frozen=True)
class Delivery:
    """A status message handed to the event loop; ack or reject it through the broker."""

    tag: int
    body: bytes
    message_id: str | None
    connection_epoch: int  # which connection it came on: acks for older ones are moot
    queue: str = topology.STATUS_QUEUE
    headers: dict[str, Any] = field(default_factory=dict)

    @property
    def dead_letter_reason(self) -> str:
        """Why it was dead-lettered: the refusing consumer's reason (``NotJson``, ``TooDeep``,
        ``NoHandler``…, see :mod:`asynctask_worker.topology`) or RabbitMQ's
        (``delivery_limit``, ``rejected``, ``expired``)."""
        reason: Any = self.headers.get(topology.DEAD_REASON_HEADER)
        if not reason:
            deaths = self.headers.get("x-death")
            first = deaths[0] if isinstance(deaths, list) and deaths else {}
            first = first if isinstance(first, dict) else {}
            reason = first.get("reason") or self.headers.get("x-first-death-reason")
        if isinstance(reason, bytes):
            reason = reason.decode(errors="replace")
        return str(reason or "unknown")


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


class ScheduleApi(EventApi, Protocol):
    """What the schedule controller does to Kubernetes (:mod:`apiserver.schedule_calls`)."""

    async def create_task(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an AsyncTask and return it (its metadata at least);
        :class:`errors.AlreadyExists` if the name is taken."""

    async def cancel_task(self, namespace: str, name: str, uid: str) -> None:
        """Set ``spec.cancel`` on a task (still ``uid``)."""

    async def delete(self, namespace: str, name: str, uid: str) -> None: ...

    async def write_schedule_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> None:
        """Replace a schedule's status, only if the object is still ``uid``."""


class TaskBroker(Protocol):
    """Task and control messages out; status deliveries settled."""

    async def publish_task(self, msg: TaskMessage) -> None: ...

    async def publish_control(self, msg: ControlMessage) -> None: ...

    def ack(self, delivery: Delivery) -> None: ...

    def refuse(self, delivery: Delivery, reason: str, detail: str) -> None:
        """Dead-letter ``delivery`` with why in its headers; it is acked once that is done."""
        ...


class QueueApi(Protocol):
    """AsyncQueues: their status, and Events about them (cluster-scoped: in ``default``)."""

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> None: ...

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None: ...


class QueueDepths(Protocol):
    """RabbitMQ's side of a task queue: (messages ready, consumers)."""

    async def queue_depth(self, task_queue: str) -> tuple[int, int]: ...


class ArchiveStore(Protocol):
    """The history archive (``archive.store.PostgresArchive``): rows upserted by uid, and
    its partitions kept (made ahead, dropped past retention)."""

    async def upsert(self, records: Sequence[ArchiveRecord]) -> None: ...

    async def maintain(self, retention_days: int) -> list[str]: ...


class ArchiveIndex(Protocol):
    """Which task uids have a row in the history archive (the sweep keeps their stored
    results until the archive's retention drops the row)."""

    async def archived_uids(self, uids: Sequence[str]) -> set[str]: ...


class ArchiveGate(Protocol):
    """Asked before a TTL deletion (``archiving.Archiver``): seconds to wait and ask again,
    or None to delete now."""

    def hold_deletion(self, uid: str) -> float | None: ...


@dataclass(frozen=True)
class StoredObject:
    """One object as a bucket listing shows it."""

    key: str
    size: int
    modified: float  # epoch seconds


class PayloadStore(Protocol):
    """Object storage of large payloads (``payloads.store.S3Store``): presigned URLs for
    the workers, and the few calls of the operator's own (delete, list). The bytes never
    pass through it."""

    async def presign(self, method: Literal["GET", "PUT"], bucket: str, key: str) -> str:
        """A URL that lets its holder ``method`` one object, for the configured lifetime."""

    async def delete(self, bucket: str, key: str) -> None:
        """Delete one object (no error if it is absent)."""

    async def list_page(
        self, bucket: str, prefix: str, after: str | None
    ) -> tuple[list[StoredObject], bool]:
        """Objects under ``prefix`` after the key ``after`` in key order, and whether more
        follow (a page of up to 1000)."""


class EventSink(Protocol):
    """Kubernetes Events of what happens to a task (:class:`kube_events.EventRecorder`)."""

    def record(self, ref: TaskRef, reason: str, message: str, *, about: str = ...) -> None:
        """An Event about ``ref`` (an AsyncTask unless ``about`` names another kind)."""


async def stop_work(broker: TaskBroker, ref: TaskRef, action: StopAction, reason: str) -> None:
    """Tell every worker (and any that starts later) to stop or skip this task."""
    await broker.publish_control(ControlMessage(action=action, task=ref, reason=reason))
