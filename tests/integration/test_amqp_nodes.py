"""Several AMQP URLs (the nodes of a cluster): the link connects to the node that takes
the connection, and after losing one it tries the others first."""

from __future__ import annotations

import logging
import urllib.parse

import pytest

from asynctask_worker import amqp
from testbed import RabbitMQ
from testbed._proc import free_port

pytestmark = pytest.mark.integration


def test_a_link_skips_a_dead_node_and_reconnects_to_a_live_one(
    rabbitmq: RabbitMQ, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dead = urllib.parse.urlsplit(url)._replace(netloc=f"guest:guest@127.0.0.1:{free_port()}")
    nodes = amqp.parameters(f"{dead.geturl()},{url}", attempts=1)
    link = amqp.Link(nodes, name="test link", log=logging.getLogger("test"))
    try:
        link.open()  # the first node refuses: the second one takes the connection
        assert link.node is nodes[1] and link.epoch == 1
        vhost = urllib.parse.unquote(urllib.parse.urlsplit(url).path[1:])
        rabbitmq.close_connections(vhost)
        connection = link.open()
        with pytest.raises(amqp.BROKER_ERRORS) as lost:
            connection.process_data_events(time_limit=5)
        link.lost(lost.value)
        link.open()
        link.serving()
        assert link.node is nodes[1] and link.epoch == 2
    finally:
        link.close()
    said = [r.getMessage() for r in caplog.records if r.name == "test"]
    live = amqp.node_name(nodes[1])
    assert any(
        "lost RabbitMQ" in m and m.endswith(f"at {live}; reconnecting with backoff") for m in said
    ), said
    assert any("reconnected to RabbitMQ after" in m and m.endswith(f"({live})") for m in said), said
