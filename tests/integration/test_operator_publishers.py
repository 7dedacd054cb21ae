"""The operator's publishers against the real RabbitMQ: many publishes in flight on one
connection, settled by RabbitMQ's answers (``multiple`` ones too); a nack or an unroutable
message fails its own publish only; a connection closed mid-flight loses none."""

from __future__ import annotations

import asyncio
import contextlib
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import pika
import pika.exceptions
import pytest
from pika.adapters.blocking_connection import BlockingChannel as Channel

from asynctask_operator.broker.publishers import Publishers
from asynctask_worker import topology
from asynctask_worker.messages import ControlMessage, TaskMessage, TaskRef, decode
from testbed import RabbitMQ
from testbed._proc import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def channel(url: str) -> Iterator[Channel]:
    conn = pika.BlockingConnection(pika.URLParameters(url))
    yield conn.channel()
    if conn.is_open:
        conn.close()


def pool(url: str, size: int = 1, retries: list[int] | None = None) -> Publishers:
    found = [] if retries is None else retries
    pubs = Publishers(
        url, size=size, heartbeat=30, reconnect_max_delay=1, on_retry=lambda: found.append(1)
    )
    pubs.start()
    return pubs


def task(queue: str, n: int) -> TaskMessage:
    ref = TaskRef(uid=str(uuid.uuid4()), namespace="ns", name=f"t{n}")
    return TaskMessage(task=ref, queue=queue, request={"n": n})


def drain(url: str, queue: str, expect: int) -> list[str]:
    """The message ids in ``queue`` (consumed): at least ``expect`` are awaited."""
    ids: list[str] = []
    deadline = time.monotonic() + 30
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        ch = conn.channel()
        ch.basic_qos(prefetch_count=500)
        for method, props, body in ch.consume(queue, auto_ack=True, inactivity_timeout=0.5):
            if method is None and len(ids) >= expect:
                break  # all there, and no duplicate for 0.5 s
            if method is None and time.monotonic() < deadline:
                continue  # quorum queues show a message once committed
            if method is None:
                break
            assert decode(TaskMessage, body).message_id == props.message_id
            ids.append(str(props.message_id))
        ch.cancel()
    assert len(ids) >= expect, f"{len(ids)} messages, {expect} awaited"
    return ids


async def test_one_connection_keeps_many_publishes_in_flight_and_settles_them_all(
    url: str, rabbitmq: RabbitMQ
) -> None:
    """300 task messages at once on one publisher connection: all confirmed, each in its
    queue once; many were in flight together and answers settled several at a time."""
    queue = f"it-{uuid.uuid4().hex[:6]}"
    pubs = pool(url)
    try:
        msgs = [task(queue, i) for i in range(300)]
        await asyncio.wait_for(asyncio.gather(*(pubs.publish_task(m) for m in msgs)), 60)
        (thread,) = pubs.threads
        assert thread.book.most_open >= 10, thread.book.most_open  # not one at a time
        assert 0 < thread.answers < len(msgs), thread.answers  # `multiple` answers came
        assert len(thread.book) == 0
    finally:
        pubs.stop()
        pubs.join(10)
    got = drain(url, topology.task_queue_name(queue), len(msgs))
    assert sorted(got) == sorted(m.message_id for m in msgs)


async def test_a_nacked_or_unroutable_publish_fails_alone_and_the_next_one_goes_through(
    url: str, channel: Channel
) -> None:
    """A queue that refuses a message (full, ``reject-publish``) makes RabbitMQ nack it:
    that publish fails with NackError. A task queue deleted behind the operator's back
    returns its message: that publish fails (UnroutableError), and the next one declares
    the queue again and is confirmed. The connection is kept throughout."""
    pubs = pool(url)
    queue = f"it-{uuid.uuid4().hex[:6]}"
    try:
        await asyncio.wait_for(pubs.publish_task(task(queue, 0)), 30)
        full = channel.queue_declare(
            "", exclusive=True, arguments={"x-max-length": 0, "x-overflow": "reject-publish"}
        ).method.queue
        topology.declare_control_exchange(channel)
        channel.queue_bind(full, topology.CONTROL_EXCHANGE)
        cancel = ControlMessage(action="cancel", task=task(queue, 1).task, reason="test")
        with pytest.raises(pika.exceptions.NackError):
            await asyncio.wait_for(pubs.publish_control(cancel), 30)
        channel.queue_unbind(full, topology.CONTROL_EXCHANGE)
        await asyncio.wait_for(pubs.publish_control(cancel), 30)  # routed nowhere: fine

        channel.queue_delete(topology.task_queue_name(queue))
        with pytest.raises(pika.exceptions.UnroutableError):
            await asyncio.wait_for(pubs.publish_task(task(queue, 2)), 30)
        again = task(queue, 3)
        await asyncio.wait_for(pubs.publish_task(again), 30)
        (thread,) = pubs.threads
        assert thread._link.epoch == 1  # never reconnected
    finally:
        pubs.stop()
        pubs.join(10)
    assert drain(url, topology.task_queue_name(queue), 1) == [again.message_id]


@contextlib.contextmanager
def publishing_held(rabbitmq: RabbitMQ) -> Iterator[None]:
    """RabbitMQ's memory alarm, raised on purpose (a watermark of 0): the node stops
    reading what publishing connections send, so their publishes stay unanswered."""
    was = rabbitmq.ctl("eval", "vm_memory_monitor:get_vm_memory_high_watermark().").stdout
    rabbitmq.ctl("set_vm_memory_high_watermark", "0")
    try:
        yield
    finally:
        value = was.strip()
        if value.startswith("{absolute,"):
            rabbitmq.ctl("set_vm_memory_high_watermark", "absolute", value[10:-1].strip())
        else:
            rabbitmq.ctl("set_vm_memory_high_watermark", value)


async def test_a_connection_closed_mid_flight_loses_no_publish(
    url: str, rabbitmq: RabbitMQ
) -> None:
    """200 publishes in flight on two connections (RabbitMQ holds them: a memory alarm)
    when RabbitMQ closes the connections: the unanswered ones are sent again on the next
    connections, and once the alarm clears every publish is confirmed and every message
    is in its queue (some perhaps twice: at-least-once)."""
    vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
    queue = f"it-{uuid.uuid4().hex[:6]}"
    retries: list[int] = []
    pubs = pool(url, size=2, retries=retries)
    msgs = [task(queue, i) for i in range(200)]
    try:
        await asyncio.wait_for(pubs.publish_task(task(queue, -1)), 30)  # declared
        with publishing_held(rabbitmq):
            published = asyncio.gather(*(pubs.publish_task(m) for m in msgs))

            def in_flight() -> bool:
                return sum(len(t.book) for t in pubs.threads) >= 150

            await asyncio.to_thread(wait_until, "all sent", in_flight, 30)
            assert not published.done()
            await asyncio.to_thread(rabbitmq.close_connections, vhost)
            await asyncio.to_thread(wait_until, "publishes sent again", lambda: bool(retries), 30)
        await asyncio.wait_for(published, 60)
        names = await asyncio.to_thread(rabbitmq.connection_names, vhost)
        assert names == ["operator publisher 1", "operator publisher 2"]  # reconnected
    finally:
        pubs.stop()
        pubs.join(10)
    got = drain(url, topology.task_queue_name(queue), len(msgs) + 1)
    assert set(m.message_id for m in msgs) <= set(got)
    print(f"\n{len(retries)} sent again, {len(got) - len(msgs) - 1} twice")
