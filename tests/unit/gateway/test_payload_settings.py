"""The gateway's object storage settings (ASYNCTASK_S3_*, the names the operator reads too)
and the URLs it presigns (botocore signs locally: no server is called here)."""

from __future__ import annotations

import urllib.parse

import pytest

from asynctask_gateway.payload_store import PayloadStore, s3_client
from asynctask_gateway.settings import GatewaySettings, S3Settings

NAMES = ("ENDPOINT", "BUCKET", "REGION", "PREFIX", "PATH_STYLE", "THRESHOLD_BYTES",
         "URL_SECONDS", "PUBLIC_ENDPOINT")  # fmt: skip


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in NAMES:
        monkeypatch.delenv(f"ASYNCTASK_S3_{name}", raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test-key")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test-secret")


def test_without_an_endpoint_offload_is_off_with_the_documented_defaults() -> None:
    s3 = S3Settings()
    assert not s3.enabled
    assert (s3.region, s3.prefix, s3.path_style) == ("us-east-1", "asynctask/", True)
    assert (s3.threshold_bytes, s3.url_seconds) == (65536, 86400)
    assert GatewaySettings().max_upload_bytes == 5 * 1024**3


def test_an_endpoint_needs_a_bucket(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_S3_ENDPOINT", "http://127.0.0.1:9000")
    with pytest.raises(ValueError, match="ASYNCTASK_S3_BUCKET"):
        S3Settings()
    monkeypatch.setenv("ASYNCTASK_S3_BUCKET", "tasks")
    assert S3Settings().enabled


def test_urls_handed_to_callers_name_the_public_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_S3_ENDPOINT", "http://store.internal:9000")
    monkeypatch.setenv("ASYNCTASK_S3_BUCKET", "tasks")
    monkeypatch.setenv("ASYNCTASK_S3_PUBLIC_ENDPOINT", "https://files.example.com")
    store = PayloadStore(S3Settings())
    key = "asynctask/ns/uid-1/result"
    inside = urllib.parse.urlsplit(store.presign("get_object", key, 300))
    outside = urllib.parse.urlsplit(store.presign("get_object", key, 300, public=True))
    assert inside.netloc == "store.internal:9000" and outside.netloc == "files.example.com"
    # Path style: the bucket in the path; one object, one method, a bounded lifetime.
    assert outside.path == f"/tasks/{key}"
    query = urllib.parse.parse_qs(outside.query)
    assert query["X-Amz-Expires"] == ["300"] and "X-Amz-Signature" in query


@pytest.mark.parametrize("path_style", ["true", "false"])
def test_the_gateway_client_takes_the_options_the_operator_takes(
    monkeypatch: pytest.MonkeyPatch, path_style: str
) -> None:
    monkeypatch.setenv("ASYNCTASK_S3_ENDPOINT", "http://store.internal:9000")
    monkeypatch.setenv("ASYNCTASK_S3_BUCKET", "tasks")
    monkeypatch.setenv("ASYNCTASK_S3_PATH_STYLE", path_style)
    settings = S3Settings()
    boto = s3_client(settings).meta.config
    expected = settings.client_options()
    assert boto.s3 == expected["s3"] and boto.retries == expected["retries"]
    assert (boto.connect_timeout, boto.read_timeout) == (5.0, 30.0)
    assert (boto.signature_version, boto.region_name) == ("s3v4", "us-east-1")
