"""Which tasks were revoked (cancelled or timed out), and how a worker learns it.

The operator publishes a :class:`ControlMessage` to the fanout exchange
``topology.CONTROL_EXCHANGE``, which feeds the durable stream ``topology.CONTROL_STREAM``
(kept one day). Every worker *reads the stream* (AMQP 0.9.1 stream consumer: prefetch,
manual acks, ``x-stream-offset``) instead of a queue of its own, so a worker learns about
cancellations published before it started:

* on its first connection a worker attaches at "now minus the history window" (the
  retention, one day) and replays the cancellations into a bounded :class:`RevokedSet`,
  like Celery's revoked list. A task message whose task is in the set is acked without
  running the handler and reported ``Cancelled`` (or ``TimedOut``);
* to know when the replay is complete, the worker appends a *sync marker* of its own
  to the stream (type ``asynctask.sync``, through the default exchange, so only stream
  readers see it) and starts consuming task queues only once it read its marker back:
  everything before the marker, every cancellation confirmed before the worker
  started, has been applied by then. A passive declare cannot tell: it reports 0
  messages for a stream;
* after a reconnect it resumes at the offset after the last one it read, so it misses
  nothing published while the broker was away;
* later cancellations arrive live; a running task is told at once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import pika
from pika.adapters.blocking_connection import BlockingChannel
from pika.spec import Basic, BasicProperties

from asynctask_worker import topology
from asynctask_worker.context import CANCELLED, TIMED_OUT
from asynctask_worker.messages import ControlMessage, MalformedMessage, decode

log = logging.getLogger("asynctask.worker.control")

#: The AMQP ``type`` of a worker's sync marker in the control stream.
SYNC_TYPE = "asynctask.sync"

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """A thread-safe map that forgets its oldest entries beyond ``capacity`` or ``max_age``."""

    def __init__(
        self,
        capacity: int,
        max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.max_age = max_age
        self._clock = clock
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, key: K, value: V) -> None:
        now = self._clock()
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = (now, value)
            self._prune(now)

    def get(self, key: K) -> V | None:
        with self._lock:
            self._prune(self._clock())
            entry = self._items.get(key)
        return None if entry is None else entry[1]

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def _prune(self, now: float) -> None:
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
        if self.max_age is not None:
            while self._items:
                added, _ = next(iter(self._items.values()))
                if now - added <= self.max_age:
                    break
                self._items.popitem(last=False)


@dataclass(frozen=True)
class Revocation:
    reason: str  # CANCELLED or TIMED_OUT
    detail: str = ""


def revocation_of(msg: ControlMessage) -> Revocation:
    return Revocation(TIMED_OUT if msg.action == "timeout" else CANCELLED, msg.reason)


class RevokedSet(BoundedMap[str, Revocation]):
    """Task uids that must not run (any more), with why; bounded in size and age."""

    def __init__(self, capacity: int = 100_000, max_age: float = 86_400.0) -> None:
        super().__init__(capacity, max_age)


class ControlLog:
    """Reads the control stream on the consumer thread's connection; survives reconnects.

    Not thread-safe: only the consumer thread (the one that owns the connection) uses it.
    """

    def __init__(
        self,
        on_control: Callable[[ControlMessage], object],
        *,
        worker_id: str,
        history_seconds: float = 86_400.0,
        prefetch: int = 256,
    ) -> None:
        self._on_control = on_control
        self._worker_id = worker_id
        self._history = history_seconds
        self._prefetch = prefetch
        self._next_offset: int | None = None
        self._marker = ""
        self._synced = False
        self.applied = 0

    @property
    def synced(self) -> bool:
        """True once this connection read back its own sync marker."""
        return self._synced

    def subscribe(self, connection: pika.BlockingConnection) -> None:
        """Attach to the stream (where we left off, else the history window); send a marker."""
        channel = connection.channel()
        channel.basic_qos(prefetch_count=self._prefetch)  # required for stream consumers
        offset: Any = self._next_offset
        if offset is None:
            offset = datetime.now(UTC) - timedelta(seconds=self._history)
        channel.basic_consume(
            topology.CONTROL_STREAM,
            self._deliver,
            auto_ack=False,
            arguments={"x-stream-offset": offset},
        )
        self._synced = False
        self._marker = f"sync:{self._worker_id}:{uuid.uuid4().hex}"
        publisher = connection.channel()
        publisher.confirm_delivery()
        publisher.basic_publish(
            "",
            topology.CONTROL_STREAM,
            b"",
            pika.BasicProperties(
                type=SYNC_TYPE, message_id=self._marker, delivery_mode=pika.DeliveryMode.Persistent
            ),
        )
        publisher.close()

    def sync_timed_out(self) -> None:
        """The marker did not come back in time: next time, attach by timestamp again."""
        log.warning(
            "did not catch up with the control stream in time; serving anyway "
            "(cancellations published while queued may be missed)"
        )
        self._next_offset = None

    def _deliver(
        self, channel: BlockingChannel, method: Basic.Deliver, props: BasicProperties, body: bytes
    ) -> None:
        offset = (props.headers or {}).get("x-stream-offset")
        if isinstance(offset, int):
            self._next_offset = offset + 1
        channel.basic_ack(method.delivery_tag)
        if props.type == SYNC_TYPE:
            if props.message_id == self._marker:
                self._synced = True
                log.debug(
                    "caught up with the control stream (%d control messages applied)", self.applied
                )
            return
        try:
            msg = decode(ControlMessage, body)
        except MalformedMessage as exc:
            log.warning("ignoring an invalid control message at offset %s: %s", offset, exc)
            return
        self.applied += 1
        self._on_control(msg)
