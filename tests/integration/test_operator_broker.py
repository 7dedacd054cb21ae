"""The operator's broker thread against the real RabbitMQ: confirms, persistence, bridging."""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import closing

import pika
import pytest

from asynctask_operator.broker import Broker
from asynctask_operator.ports import Delivery
from asynctask_worker import topology
from asynctask_worker.messages import (
    ControlMessage,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    encode,
)
from testbed import RabbitMQ
from testbed._proc import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def channel(url: str) -> Iterator[pika.adapters.blocking_connection.BlockingChannel]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    ch = conn.channel()
    topology.declare_all(ch)
    ch.queue_purge(topology.STATUS_QUEUE)
    ch.queue_purge(topology.DEAD_LETTER_QUEUE)
    yield ch
    conn.close()


def get(
    ch: pika.adapters.blocking_connection.BlockingChannel, queue: str, timeout: float = 10
) -> tuple[pika.spec.BasicProperties, bytes]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return props, body
        time.sleep(0.05)
    raise AssertionError(f"nothing arrived in {queue}")


def ref() -> TaskRef:
    return TaskRef(uid=str(uuid.uuid4()), namespace="ns", name="task")


async def test_publish_task_is_durable_confirmed_and_identified(
    url: str, rabbitmq: RabbitMQ, channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    queue = f"it-{uuid.uuid4().hex[:6]}"
    broker = Broker(url)
    broker.start_consuming(asyncio.get_running_loop(), asyncio.Queue())
    try:
        msg = TaskMessage(task=ref(), queue=queue, request={"n": 1}, timeout_seconds=9)
        await asyncio.wait_for(broker.publish_task(msg), 20)
        props, body = get(channel, topology.task_queue_name(queue))
        assert props.delivery_mode == 2
        assert props.message_id == f"task:{msg.task.uid}:1"
        # The task is named in headers too: a body nobody can read still names its task.
        assert {k: v for k, v in props.headers.items() if k.startswith("asynctask-")} == {
            "asynctask-uid": msg.task.uid,
            "asynctask-attempt": 1,
            "asynctask-namespace": "ns",
            "asynctask-name": "task",
        }
        assert decode(TaskMessage, body) == msg
        # The queue is a durable quorum queue with a delivery limit and dead-lettering.
        vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
        info = rabbitmq.queue(vhost, topology.task_queue_name(queue))
        assert (info["type"], info["durable"]) == ("quorum", True)
        assert info["arguments"]["x-delivery-limit"] == topology.DEFAULT_DELIVERY_LIMIT
        assert info["arguments"]["x-dead-letter-exchange"] == topology.DEAD_LETTER_EXCHANGE
    finally:
        broker.stop()
        broker.join(10)


async def test_tasks_published_at_once_are_confirmed_over_several_connections(
    url: str, rabbitmq: RabbitMQ, channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    """A confirm waits for the quorum queue's disk write: the operator publishes over a
    pool of connections, each awaiting one confirm, so a burst of new tasks is not queued
    one confirm after the other. Every message arrives, each once."""
    queue = f"it-{uuid.uuid4().hex[:6]}"
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
    broker = Broker(url, publishers=3)
    broker.start_consuming(asyncio.get_running_loop(), asyncio.Queue())
    try:
        msgs = [TaskMessage(task=ref(), queue=queue, request={"n": i}) for i in range(60)]
        await asyncio.wait_for(asyncio.gather(*(broker.publish_task(m) for m in msgs)), 30)
        names = rabbitmq.connection_names(vhost)
        assert names == [
            "operator broker",
            "operator publisher 1",
            "operator publisher 2",
            "operator publisher 3",
        ]
        got = [get(channel, topology.task_queue_name(queue))[0].message_id for _ in msgs]
        assert sorted(got) == sorted(m.message_id for m in msgs)
        left = channel.queue_declare(topology.task_queue_name(queue), passive=True)
        assert left.method.message_count == 0
    finally:
        broker.stop()
        broker.join(10)


async def test_status_deliveries_reach_the_event_loop_and_refusals_dead_letter_with_why(
    url: str, channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    inbox: asyncio.Queue[Delivery] = asyncio.Queue()
    broker = Broker(url)
    broker.start_consuming(asyncio.get_running_loop(), inbox)
    try:
        good = StatusMessage(task=ref(), phase=Phase.PROCESSING, progress=3)
        channel.basic_publish(
            "",
            topology.STATUS_QUEUE,
            encode(good),
            pika.BasicProperties(message_id=good.message_id),
        )
        channel.basic_publish(
            "", topology.STATUS_QUEUE, b"{not json", pika.BasicProperties(message_id="garbage")
        )
        first = await asyncio.wait_for(inbox.get(), 20)
        second = await asyncio.wait_for(inbox.get(), 20)
        assert decode(StatusMessage, first.body) == good
        assert second.message_id == "garbage"
        broker.ack(first)
        broker.refuse(second, "NotJson", "key must be a string at line 1 column 2")
        props, body = get(channel, topology.DEAD_LETTER_QUEUE)
        assert body == b"{not json" and props.message_id == "garbage"
        assert props.headers[topology.DEAD_REASON_HEADER] == "NotJson"
        assert props.headers[topology.DEAD_QUEUE_HEADER] == topology.STATUS_QUEUE
        assert props.headers[topology.DEAD_BY_HEADER] == "operator"
        assert "line 1 column 2" in props.headers[topology.DEAD_DETAIL_HEADER]
    finally:
        broker.stop()
        broker.join(10)
    # Acked once dead-lettered: with the operator's connection closed, nothing came back.
    assert channel.queue_declare(topology.STATUS_QUEUE, passive=True).method.message_count == 0


async def test_control_messages_reach_the_control_stream(
    url: str, channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    broker = Broker(url)
    broker.start_consuming(asyncio.get_running_loop(), asyncio.Queue())
    probe = channel.queue_declare("", exclusive=True).method.queue
    channel.queue_bind(probe, topology.CONTROL_EXCHANGE)
    try:
        msg = ControlMessage(action="cancel", task=ref(), reason="test")
        await asyncio.wait_for(broker.publish_control(msg), 20)
        _, body = get(channel, probe)
        assert decode(ControlMessage, body) == msg
    finally:
        broker.stop()
        broker.join(10)


async def test_a_lost_connection_is_reported_once_and_old_deliveries_are_not_settled(
    url: str, rabbitmq: RabbitMQ, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
    inbox: asyncio.Queue[Delivery] = asyncio.Queue()
    broker = Broker(url, reconnect_max_delay=1)
    broker.start_consuming(asyncio.get_running_loop(), inbox)
    try:
        assert await asyncio.to_thread(broker.connected.wait, 20)  # the queues are declared
        status = StatusMessage(task=ref(), phase=Phase.PROCESSING, progress=3)
        with closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
            conn.channel().basic_publish("", topology.STATUS_QUEUE, encode(status))
        first = await asyncio.wait_for(inbox.get(), 20)
        assert (first.connection_epoch, broker.connection_epoch) == (1, 1)
        rabbitmq.close_connections(vhost)
        # Unacked, the message comes again on the next connection; the old one is void.
        again = await asyncio.wait_for(inbox.get(), 30)
        assert (again.body, again.connection_epoch) == (first.body, 2)
        broker.ack(first)  # moot: that channel is gone (acking it would ack `again`)
        broker.ack(again)
        # Acking one tag twice would have closed the consuming channel: it still consumes.
        later = StatusMessage(task=ref(), phase=Phase.PROCESSING, progress=4)
        with closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
            conn.channel().basic_publish("", topology.STATUS_QUEUE, encode(later))
        third = await asyncio.wait_for(inbox.get(), 20)
        assert decode(StatusMessage, third.body) == later
        broker.ack(third)  # asked before stop(): done before the connection closes
    finally:
        broker.stop()
        broker.join(10)
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
        left = conn.channel().queue_declare(topology.STATUS_QUEUE, passive=True)
    assert left.method.message_count == 0  # acked, not requeued when the broker stopped
    ours = [r for r in caplog.records if r.name == "asynctask.operator.broker"]
    lost = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    back = [r.getMessage() for r in ours if "reconnected" in r.getMessage()]
    assert len(lost) == 1 and "lost RabbitMQ (ConnectionClosedByBroker: " in lost[0], lost
    assert "closed by a test" in lost[0]  # the cause, as the broker gave it
    assert len(back) == 1 and back[0].startswith("operator broker: reconnected"), back
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_broker_restart_is_told_once_and_a_publish_waits_for_it(
    url: str, rabbitmq: RabbitMQ, caplog: pytest.LogCaptureFixture
) -> None:
    """A real restart of the node (not a closed connection): one WARNING with the cause,
    one INFO when back, DEBUG for each failed attempt in between, never an ERROR or a
    traceback; a task published during the outage is confirmed once it is back."""
    caplog.set_level(logging.DEBUG)
    broker = Broker(url, reconnect_max_delay=1)
    broker.start_consuming(asyncio.get_running_loop(), asyncio.Queue())
    queue = f"it-{uuid.uuid4().hex[:6]}"
    try:
        assert await asyncio.to_thread(broker.connected.wait, 20)
        rabbitmq.stop_node()
        try:
            await asyncio.to_thread(
                wait_until, "the broker to notice", lambda: not broker.connected.is_set(), 30
            )
            msg = TaskMessage(task=ref(), queue=queue, request={"during": "outage"})
            publish = asyncio.ensure_future(broker.publish_task(msg))
            # A few attempts fail while the node is down (each logged at DEBUG only).
            await asyncio.to_thread(
                wait_until,
                "failed reconnection attempts",
                lambda: sum("still no RabbitMQ" in r.getMessage() for r in caplog.records) >= 2,
                30,
            )
            assert not publish.done()
        finally:
            rabbitmq.start_node()
        await asyncio.wait_for(publish, 60)  # confirmed after the reconnect
        # A publisher's connection may confirm it before the consuming one is back (each
        # retries on its own, and one attempt may meet the node still recovering its
        # queues): the consumer must come back too, and say so once.
        assert await asyncio.to_thread(broker.connected.wait, 30)
    finally:
        broker.stop()
        broker.join(10)
    ours = [r for r in caplog.records if r.name == "asynctask.operator.broker"]
    warnings = [r.getMessage() for r in ours if r.levelno == logging.WARNING]
    back = [r.getMessage() for r in ours if "reconnected" in r.getMessage()]
    assert len(warnings) == 1 and "operator broker: lost RabbitMQ (" in warnings[0], warnings
    assert "no detail given" not in warnings[0] and "()" not in warnings[0]
    assert len(back) == 1, back
    loud = [
        (r.name, r.getMessage()) for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info
    ]
    assert loud == []
    print(f"\noutage told as: {warnings[0]!r}, then {back[0]!r}")


async def test_acks_of_a_turn_go_together_and_spare_what_is_still_handled(
    url: str, channel: pika.adapters.blocking_connection.BlockingChannel
) -> None:
    """Acks asked for together are sent as one ``multiple`` ack where they make a run from
    the oldest open delivery: one still being handled, or one rejected, is never swept up.
    Here every delivery but one is acked (out of order) and one is rejected: once the
    operator's connection closes, exactly the unacked one is back in the queue."""
    inbox: asyncio.Queue[Delivery] = asyncio.Queue()
    broker = Broker(url)
    broker.start_consuming(asyncio.get_running_loop(), inbox)
    msgs = [StatusMessage(task=ref(), phase=Phase.PROCESSING, progress=i) for i in range(20)]
    try:
        for msg in msgs:
            props = pika.BasicProperties(message_id=msg.message_id)
            channel.basic_publish("", topology.STATUS_QUEUE, encode(msg), props)
        got = [await asyncio.wait_for(inbox.get(), 20) for _ in msgs]
        assert [decode(StatusMessage, d.body) for d in got] == msgs
        for delivery in reversed(got[:5] + got[7:]):
            broker.ack(delivery)
        broker.reject(got[6])  # dead-lettered by RabbitMQ, not acked
        # got[5] is still "being handled"
    finally:
        broker.stop()
        broker.join(10)

    def left() -> int:
        return int(channel.queue_declare(topology.STATUS_QUEUE, passive=True).method.message_count)

    # A quorum queue takes back a closed channel's unacked deliveries through its log, a
    # moment after the close: wait for them, then give any other a second more to show.
    await asyncio.to_thread(wait_until, "the unacked delivery back", lambda: left() >= 1, 20)
    await asyncio.sleep(1)
    assert left() == 1
    _, body = get(channel, topology.STATUS_QUEUE)
    assert decode(StatusMessage, body) == msgs[5]
    _, body = get(channel, topology.DEAD_LETTER_QUEUE)
    assert decode(StatusMessage, body) == msgs[6]
