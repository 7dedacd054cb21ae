"""The one set of S3 client options the operator and the gateway build their boto3 clients
from (``StorageSettings.client_options``: pure, the SDK imports no boto3)."""

from __future__ import annotations

import pytest

from asynctask_worker.payloads import StorageSettings


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENDPOINT", "BUCKET", "REGION", "PATH_STYLE"):
        monkeypatch.delenv(f"ASYNCTASK_S3_{name}", raising=False)


def test_path_style_is_path_addressing_with_sigv4_bounded_retries_and_timeouts() -> None:
    options = StorageSettings(endpoint="http://s3.test:9000", bucket="tasks").client_options()
    assert options == {
        "signature_version": "s3v4",
        "region_name": "us-east-1",
        "s3": {"addressing_style": "path"},
        "retries": {"total_max_attempts": 3, "mode": "standard"},
        "connect_timeout": 5.0,
        "read_timeout": 30.0,
    }


def test_without_path_style_the_bucket_is_in_the_host_name_never_guessed() -> None:
    settings = StorageSettings(
        endpoint="https://s3.eu-west-1.amazonaws.com",
        bucket="tasks",
        region="eu-west-1",
        path_style=False,
    )
    options = settings.client_options()
    assert options["s3"] == {"addressing_style": "virtual"}
    assert options["region_name"] == "eu-west-1"


def test_each_call_gives_a_fresh_dict() -> None:
    settings = StorageSettings()
    first = settings.client_options()
    first["s3"]["addressing_style"] = "auto"
    assert settings.client_options()["s3"] == {"addressing_style": "path"}
