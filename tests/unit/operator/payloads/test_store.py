"""The operator's boto3 client takes the shared client options (no server is called: a
client is built and a URL signed locally)."""

from __future__ import annotations

import urllib.parse

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
