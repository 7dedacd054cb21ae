"""The operator's boto3 client takes the shared client options, and presigning is a plain
call with static credentials (no thread, no connection) but runs in a thread with
credentials that refresh (no server is called here)."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from asynctask_operator.payloads.store import S3Store
from asynctask_operator.settings import PayloadConfig


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")


@pytest.mark.parametrize(("path_style", "style"), [(True, "path"), (False, "virtual")])
def test_the_client_is_built_from_the_shared_options(path_style: bool, style: str) -> None:
    config = PayloadConfig(
        endpoint="http://store.test:9000", bucket="tasks", region="eu-west-1", path_style=path_style
    )
    boto = S3Store(config)._client.meta.config
    assert boto.s3 == {"addressing_style": style}
    assert boto.retries == {"total_max_attempts": 3, "mode": "standard"}
    assert (boto.connect_timeout, boto.read_timeout) == (5.0, 30.0)
    assert (boto.signature_version, boto.region_name) == ("s3v4", "eu-west-1")


@pytest.mark.parametrize(("path_style", "host", "path"), [
    (True, "store.test:9000", "/tasks/k"), (False, "tasks.store.test:9000", "/k"),
])  # fmt: skip
async def test_a_presigned_url_addresses_the_bucket_as_configured(
    path_style: bool, host: str, path: str
) -> None:
    config = PayloadConfig(endpoint="http://store.test:9000", bucket="tasks", path_style=path_style)
    url = urllib.parse.urlsplit(await S3Store(config).presign("GET", "tasks", "k"))
    assert (url.netloc, url.path) == (host, path)
    assert "X-Amz-Signature" in urllib.parse.parse_qs(url.query)


def _no_thread(*_: object, **__: object) -> None:
    raise AssertionError("a presign with static credentials went to a thread")


def _no_connection(*_: object, **__: object) -> None:
    raise AssertionError("a presign opened a connection")


async def test_with_static_credentials_a_presign_is_a_plain_call_without_io(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = S3Store(PayloadConfig(endpoint="http://store.test:9000", bucket="tasks"))
    assert not store.presign_may_fetch
    monkeypatch.setattr(asyncio, "to_thread", _no_thread)
    monkeypatch.setattr(socket.socket, "connect", _no_connection)
    monkeypatch.setattr(socket, "getaddrinfo", _no_connection)
    for method in ("GET", "PUT"):
        url = await store.presign(method, "tasks", "asynctask/ns/uid/result")
        assert "X-Amz-Signature=" in url


async def test_with_credentials_that_refresh_a_presign_runs_in_a_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Keys with an expiry are refreshable credentials, as IRSA's and a role's are: near the
    # expiry botocore fetches inside the presign (here, from the environment again).
    soon = datetime.now(UTC) + timedelta(minutes=5)  # inside botocore's refresh window
    monkeypatch.setenv("AWS_CREDENTIAL_EXPIRATION", soon.isoformat())
    store = S3Store(PayloadConfig(endpoint="http://store.test:9000", bucket="tasks"))
    assert store.presign_may_fetch
    threads: list[object] = []
    real = asyncio.to_thread

    async def recorded(func: Callable[..., str], /, *args: object) -> str:
        threads.append(func)
        return await real(func, *args)

    monkeypatch.setattr(asyncio, "to_thread", recorded)
    url = await store.presign("GET", "tasks", "k")
    assert "X-Amz-Signature=" in url and threads == [store._presign]
