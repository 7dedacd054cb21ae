"""Fixtures of the integration tests: a virtual host of its own per test on the session's
RabbitMQ node (the e2e tests' operator and workers, alive for the whole session, consume the
default one's queues), and a client that publishes tasks and reads statuses there."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from testbed import RabbitMQ
from tests.integration.worker_harness import BrokerClient


@pytest.fixture
def url(rabbitmq: RabbitMQ) -> Iterator[str]:
    vhost = f"it-{uuid.uuid4().hex[:8]}"
    yield rabbitmq.add_vhost(vhost)
    rabbitmq.delete_vhost(vhost)


@pytest.fixture
def broker(url: str) -> Iterator[BrokerClient]:
    client = BrokerClient(url)
    yield client
    client.close()
