"""The status publisher's bookkeeping, without a broker: the confirms settle the futures
(``multiple`` too), a nack or a lost channel sends again what was not confirmed, and a
channel failing in the middle of a turn drops nothing (``_runtime/publishing.py``; the
real broker: ``tests/integration/test_worker_status_publisher.py``)."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pika.exceptions
import pytest
from pika.spec import Basic

from asynctask_worker._runtime.publishing import StatusPublisher
from asynctask_worker.messages import Phase, TaskRef


class FakeImpl:
    """pika's channel underneath: records publishes; fails from the ``fail_at``-th on."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.sent: list[str] = []
        self.fail_at = fail_at

    def basic_publish(self, **kwargs: Any) -> None:
        if self.fail_at is not None and len(self.sent) >= self.fail_at:
            raise pika.exceptions.StreamLostError("connection lost")
        self.sent.append(kwargs["properties"].message_id)


def publisher(impl: FakeImpl) -> StatusPublisher:
    pub = StatusPublisher("amqp://guest:guest@127.0.0.1:1/", worker_id="w/1")
    pub._channel = SimpleNamespace(is_open=True, _impl=impl)
    return pub


def turn(pub: StatusPublisher) -> None:
    """What the publisher thread does with what it was handed, one turn."""
    items = list(pub._inbox)
    pub._inbox.clear()
    for item in items:
        pub._handle(item)
    pub._flush_due()


def ends(pub: StatusPublisher, n: int) -> list[Future[None]]:
    return [
        pub.send(TaskRef(uid=f"uid-{i}", namespace="ns", name=f"t-{i}"), 1, Phase.SUCCEEDED)
        for i in range(n)
    ]


def confirm(pub: StatusPublisher, tag: int, multiple: bool, nack: bool = False) -> None:
    method = (Basic.Nack if nack else Basic.Ack)(delivery_tag=tag, multiple=multiple)
    pub._on_confirm(SimpleNamespace(method=method))


def test_confirms_settle_the_futures_a_multiple_one_many_at_once() -> None:
    pub = publisher(FakeImpl())
    futures = ends(pub, 5)
    turn(pub)
    assert len(pub._in_flight) == 5 and not any(f.done() for f in futures)
    confirm(pub, 2, multiple=False)
    assert [f.done() for f in futures] == [False, True, False, False, False]
    confirm(pub, 4, multiple=True)
    assert [f.done() for f in futures] == [True, True, True, True, False]
    assert len(pub._in_flight) == 1


def test_a_nack_sends_again_what_it_covers_on_the_next_channel() -> None:
    impl = FakeImpl()
    pub = publisher(impl)
    futures = ends(pub, 3)
    turn(pub)
    confirm(pub, 2, multiple=True, nack=True)
    assert not any(f.done() for f in futures)
    pub._lost()  # the loop raises on a refusal: the channel is reset
    assert [s.message.task.name for s in pub._resend] == ["t-0", "t-1", "t-2"]


def test_a_channel_failing_mid_turn_keeps_the_rest_of_the_turn_in_order() -> None:
    impl = FakeImpl(fail_at=2)
    pub = publisher(impl)
    futures = ends(pub, 5)
    turn(pub)
    assert impl.sent == ["status:uid-0:1:0", "status:uid-1:1:0"]
    assert isinstance(pub._broken, pika.exceptions.StreamLostError)  # raised by the loop
    pub._lost()
    # Unconfirmed on the lost channel, then the rest: all five again, in order, as they were.
    assert [s.message.message_id for s in pub._resend] == [f"status:uid-{i}:1:0" for i in range(5)]
    assert not any(f.done() for f in futures) and pub._broken is None


@pytest.mark.parametrize("window", [0.0, 0.05])
def test_an_attempt_is_one_sequence_whatever_the_start_window(window: float) -> None:
    pub = publisher(FakeImpl())
    pub._starts.window = window
    task = TaskRef(uid="uid-a", namespace="ns", name="a")
    pub.send(task, 1, Phase.PROCESSING, message="Processing")
    pub.send(task, 1, Phase.SUCCEEDED)
    turn(pub)
    sent = [s.message for s in pub._in_flight.drain()]  # in order of publishing
    # Within the window the start is folded into the end (one message, seq 0, started_at).
    assert [(m.phase, m.seq) for m in sent] == (
        [(Phase.SUCCEEDED, 0)] if window else [(Phase.PROCESSING, 0), (Phase.SUCCEEDED, 1)]
    )
