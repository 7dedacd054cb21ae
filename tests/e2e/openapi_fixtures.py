"""e2e fixtures of the OpenAPI tests: a gateway of their own, as the chart runs it (its
ServiceAccount token and RBAC, the chart's limits), serving two fresh namespaces outside the
shared operator's ``t-*``: Schemathesis creates hundreds of tasks with made-up queues, which no
other test should list and no operator should queue. A ``writer`` has every verb in the first
namespace and none in the second, and reads, pauses and resumes the cluster-scoped AsyncQueues
(made-up names: 404; the list: whatever queues the cluster has).
The gateway reads a history archive of its own (an empty,
migrated database on the test bed's PostgreSQL), so the history routes are run for real, and
stores large payloads in a bucket of its own on the test bed's S3 server, so the payload
routes are too.
Test modules load them with
``pytest_plugins = ["tests.e2e.openapi_fixtures"]``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from asynctask_operator.archive.store import PostgresArchive
from testbed import ControlPlane, PostgreSQL, RabbitMQ, S3Server
from tests.e2e.chart import gateway_container, gateway_rbac
from tests.e2e.gateway_client import CALLER_VERBS, Gateway, grant, grant_queues
from tests.e2e.gateway_fixtures import chart_gateway


async def _migrated(url: str) -> None:
    archive = PostgresArchive(url)
    await archive.open()
    await archive.close()


@pytest.fixture(scope="module")
def payload_bucket(s3: S3Server) -> str:
    """The own gateway's bucket of large payloads."""
    return s3.create_bucket(f"t-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def own_gateway(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    postgres: PostgreSQL,
    s3: S3Server,
    payload_bucket: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    suffix = uuid.uuid4().hex[:6]
    database = f"oa_{suffix}"
    archive_url = postgres.create_database(database)
    asyncio.run(_migrated(archive_url))
    home, served, other = f"oa-{suffix}", f"oa-{suffix}-a", f"oa-{suffix}-b"
    for ns in (home, served, other):
        control_plane.kubectl("create", "namespace", ns)
    folder = tmp_path_factory.mktemp("openapi-gateway")
    with (
        gateway_rbac(control_plane, home, served=[served, other]) as identity,
        grant_queues(control_plane, served, "writer", ["get", "list", "patch"]),
    ):
        tokens = {"writer": grant(control_plane, served, "writer", CALLER_VERBS["writer"])}
        container = gateway_container(control_plane, home, served=[served, other])
        with chart_gateway(
            "gateway-openapi",
            control_plane,
            rabbitmq,
            container,
            identity,
            folder,
            ASYNCTASK_GATEWAY_ARCHIVE_URL=archive_url,
            **s3.env(payload_bucket),
        ) as (proc, port, _):
            yield Gateway(proc, port, served, other, identity, tokens)
    for ns in (home, served, other):
        control_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)
    postgres.drop_database(database)
