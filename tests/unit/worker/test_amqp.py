"""The pure parts of the shared AMQP connection helper: backoff and how causes are told."""

from __future__ import annotations

import logging

import pika.exceptions
import pytest

from asynctask_worker.amqp import Link, node_name, parameters, split_urls
from asynctask_worker.backoff import Backoff, describe


def test_backoff_doubles_up_to_the_maximum_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(maximum=3.0, first=0.5)
    assert [backoff.next() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next() == 0.5


def test_a_cause_is_never_empty() -> None:
    # pika raises several errors whose str() is empty, or "()", or only a tuple of codes.
    assert describe(pika.exceptions.AMQPConnectionError()) == (
        "AMQPConnectionError: no detail given"
    )
    assert describe(pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED")) == (
        "ConnectionClosedByBroker: (320, 'CONNECTION_FORCED')"
    )
    assert describe(ConnectionRefusedError(111, "Connection refused")) == (
        "ConnectionRefusedError: [Errno 111] Connection refused"
    )
    wrapped = pika.exceptions.AMQPConnectionError(ConnectionRefusedError(111, "refused"))
    assert "refused" in describe(wrapped)


def test_a_refused_connection_says_so() -> None:
    """What pika raises when nothing listens: the cause is in the wrapped connector error."""
    try:
        pika.BlockingConnection(parameters("amqp://guest:guest@127.0.0.1:1/", attempts=1))
    except pika.exceptions.AMQPConnectionError as exc:
        text = describe(exc)
    assert text.startswith("AMQPConnectionError: ") and "Connection refused" in text, text


def test_parameters_set_only_what_is_asked() -> None:
    (params,) = parameters("amqp://u:p@host:5673/v", heartbeat=7, attempts=1, timeout=5)
    assert (params.host, params.port, params.virtual_host) == ("host", 5673, "v")
    assert (params.heartbeat, params.connection_attempts) == (7, 1)
    assert params.socket_timeout == params.stack_timeout == 5
    (plain,) = parameters("amqp://host/")
    assert plain.connection_attempts == pika.ConnectionParameters.DEFAULT_CONNECTION_ATTEMPTS


def test_several_urls_are_the_nodes_of_one_cluster_in_their_order() -> None:
    nodes = parameters("amqp://u:p@a:5672/v, amqp://u:p@b:5673/v,amqp://u:p@c/v", heartbeat=7)
    assert [node_name(n) for n in nodes] == ["a:5672", "b:5673", "c:5672"]
    assert {n.heartbeat for n in nodes} == {7}


def test_a_comma_in_a_password_is_written_percent_encoded() -> None:
    (node,) = parameters("amqp://u:p%2Cq@a/v")
    assert node.credentials.password == "p,q"


def test_nodes_of_different_virtual_hosts_are_refused() -> None:
    with pytest.raises(ValueError, match="different virtual hosts"):
        parameters("amqp://a/one,amqp://b/two")


def test_no_url_at_all_is_refused() -> None:
    with pytest.raises(ValueError, match="no AMQP URL"):
        split_urls(" , ")


def test_an_outage_is_one_warning_and_one_info_even_if_the_first_session_fails(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Just after a restart a node accepts connections before its queues are back: a
    session that fails while setting up is the same outage, told at DEBUG only."""
    caplog.set_level(logging.DEBUG, logger="t")
    link = Link(
        parameters("amqp://guest:guest@127.0.0.1:1/"), name="worker w", log=logging.getLogger("t")
    )
    link._connected_once = True  # it was connected before the outage
    closed = pika.exceptions.ConnectionClosedByBroker(320, "CONNECTION_FORCED - shutdown")
    link.lost(closed)
    link.lost(pika.exceptions.AMQPConnectionError(ConnectionRefusedError(111, "refused")))
    # The connection opens again, but setting up the session fails: still the same outage.
    link.lost(pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND - home node is down"))
    link.serving()
    link.serving()  # serving again on the same connection says nothing
    said = [(r.levelname, r.getMessage().split(" (")[0]) for r in caplog.records]
    assert said == [
        ("WARNING", "worker w: lost RabbitMQ"),
        ("DEBUG", "worker w: still no RabbitMQ"),
        ("DEBUG", "worker w: still no RabbitMQ"),
        ("INFO", "worker w: reconnected to RabbitMQ after 0.0s"),
    ]
