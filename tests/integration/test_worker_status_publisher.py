"""The worker's status publisher on a real RabbitMQ: many messages in flight at once, each
future settled from the broker's confirms, and none lost when the broker closes the
connection while messages are in flight (``_runtime/publishing.py``)."""

from __future__ import annotations

import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, wait
from contextlib import closing, contextmanager
from typing import Any

import pika

from asynctask_worker import topology
from asynctask_worker._runtime.publishing import StatusPublisher, _Sent
from asynctask_worker.messages import Phase, StatusMessage, TaskRef, decode
from testbed import RabbitMQ
from testbed._proc import wait_until

MESSAGES = 2000
CONFIRMED_WITHIN = 120  # seconds for all of them on a loaded shared box (they take ~1 s)


class Watched(StatusPublisher):
    """Records the most publishes it had in flight at once, and how many were in flight
    each time it lost its channel."""

    peak = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lost_in_flight: list[int] = [0]

    def _publish(self, sent: _Sent) -> None:
        super()._publish(sent)
        self.peak = max(self.peak, len(self._in_flight))

    def _lost(self) -> None:
        if self._channel is not None:
            self.lost_in_flight.append(len(self._in_flight))
        super()._lost()


@contextmanager
def publisher(url: str) -> Iterator[Watched]:
    pub = Watched(url, worker_id="it/1", reconnect_max_delay=1)
    pub.start()
    try:
        yield pub
    finally:
        pub.stop()
        pub.join(30)
    assert not pub.is_alive()


def send_ends(pub: StatusPublisher, n: int) -> dict[str, Future[None]]:
    """One terminal message for each of ``n`` tasks; their futures by task uid."""
    futures = {}
    for i in range(n):
        task = TaskRef(uid=str(uuid.uuid4()), namespace="it", name=f"t-{i}")
        futures[task.uid] = pub.send(task, 1, Phase.SUCCEEDED, result={"i": i})
    return futures


def connected(pub: StatusPublisher, connections: int) -> Callable[[], bool]:
    return lambda: pub.connections == connections


def queued(url: str) -> list[StatusMessage]:
    """Every message in the status queue (taken off it)."""
    out: list[StatusMessage] = []
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
        ch = conn.channel()
        while True:
            method, _, body = ch.basic_get(topology.STATUS_QUEUE, auto_ack=True)
            if method is None:
                return out
            out.append(decode(StatusMessage, body))


def test_many_messages_in_flight_are_each_settled_by_the_broker_confirms(url: str) -> None:
    with publisher(url) as pub:
        futures = send_ends(pub, MESSAGES)
        done, pending = wait(futures.values(), CONFIRMED_WITHIN)
        assert not pending and all(f.exception() is None for f in done)
        assert pub.peak > 1, "never more than one message in flight"
    messages = queued(url)
    assert sorted(m.task.uid for m in messages) == sorted(futures)  # each once, none lost
    assert {m.seq for m in messages} == {0}


def test_a_connection_closed_by_the_broker_mid_flight_loses_no_message(
    url: str, rabbitmq: RabbitMQ
) -> None:
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
    futures: dict[str, Future[None]] = {}
    streaming = threading.Event()
    streaming.set()

    def stream() -> None:  # messages keep coming while the connection is closed
        while streaming.is_set() and len(futures) < 40 * MESSAGES:
            futures.update(send_ends(pub, 50))
            time.sleep(0.005)

    with publisher(url) as pub:
        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        try:
            # Closed until a loss catches messages in flight (nearly always the first).
            for closes in range(1, 6):
                wait_until(
                    "a first confirm", lambda: any(f.done() for f in list(futures.values())), 60
                )
                rabbitmq.close_connections(vhost)
                wait_until("a reconnect", connected(pub, closes + 1), 60)
                if max(pub.lost_in_flight) > 0:
                    break
        finally:
            streaming.clear()
            sender.join(30)
        assert max(pub.lost_in_flight) > 0, pub.lost_in_flight
        done, pending = wait(list(futures.values()), CONFIRMED_WITHIN)
        assert not pending and all(f.exception() is None for f in done)
    messages = queued(url)
    # At least once: every message is there; one sent again after the loss may be there
    # twice, with the same id and sequence number (the operator drops the second).
    assert {m.task.uid for m in messages} == set(futures)
    assert {m.seq for m in messages} == {0}
    assert len({m.message_id for m in messages}) == len(futures)
