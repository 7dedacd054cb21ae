"""The pure checks of large payloads: which references a task may name, whose a key is,
and the operator's storage settings."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from asynctask_operator.payloads import checks
from asynctask_operator.payloads.settings import PayloadConfig
from asynctask_worker.payloads import PayloadRef, result_key, upload_key

SHA = "0" * 64


def ref(key: str, bucket: str = "b-1") -> PayloadRef:
    return PayloadRef(bucket=bucket, key=key, size=1, sha256=SHA)


def test_a_request_ref_under_its_namespaces_prefix_in_the_bucket_is_accepted() -> None:
    key = upload_key("p/", "ns")
    assert checks.request_ref_refusal(ref(key), "b-1", "p/", "ns") is None
    # another task's result in the same namespace may feed a task (chaining)
    assert checks.request_ref_refusal(ref(result_key("p/", "ns", "u")), "b-1", "p/", "ns") is None


@pytest.mark.parametrize(
    "key",
    ["p/ns2/uploads/x", "p/ns", "p/ns/", "p/ns//x", "p/ns/../ns2/x", "p/ns/./x", "q/ns/x", "ns/x"],
)
def test_a_request_ref_outside_its_namespace_is_refused(key: str) -> None:
    refused = checks.request_ref_refusal(ref(key), "b-1", "p/", "ns")
    assert refused is not None and refused[0] == checks.REQUEST_REF_REFUSED


def test_an_empty_prefix_still_confines_a_namespace() -> None:
    assert checks.request_ref_refusal(ref("ns/uploads/x"), "b-1", "", "ns") is None
    assert checks.request_ref_refusal(ref("nsx/uploads/x"), "b-1", "", "ns") is not None


def test_result_refs_must_be_the_tasks_own_key() -> None:
    own = result_key("p/", "ns", "uid-1")
    assert checks.result_ref_refusal(ref(own), "b-1", "p/", "ns", "uid-1") is None
    assert checks.result_ref_refusal(ref(own), "b-1", "p/", "ns", "uid-2") is not None
    assert checks.result_ref_refusal(ref(own, "b-2"), "b-1", "p/", "ns", "uid-1") is not None
    off = checks.result_ref_refusal(ref(own), None, "p/", "ns", "uid-1")
    assert off is not None and "ASYNCTASK_S3_ENDPOINT" in off


def test_keys_are_read_back_as_their_owner_and_anything_else_is_left_alone() -> None:
    assert checks.parse_key("p/", result_key("p/", "ns", "u1")) == checks.ObjectKey(
        "ns", "result", "u1"
    )
    assert checks.parse_key("p/", "p/ns/uploads/abc") == checks.ObjectKey("ns", "upload", "abc")
    for other in ["p/ns/u1/other", "p/ns/u1/result/x", "q/ns/u1/result", "p/ns//result", "p/x"]:
        assert checks.parse_key("p/", other) is None
    assert checks.is_upload("p/", "ns", "p/ns/uploads/abc")
    assert not checks.is_upload("p/", "ns", "p/ns2/uploads/abc")
    assert not checks.is_upload("p/", "ns", result_key("p/", "ns", "u1"))


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not PayloadConfig().enabled
    monkeypatch.setenv("ASYNCTASK_S3_ENDPOINT", "http://127.0.0.1:7070")
    monkeypatch.setenv("ASYNCTASK_S3_BUCKET", "tasks")
    monkeypatch.setenv("ASYNCTASK_S3_SWEEP_SECONDS", "5")
    config = PayloadConfig()
    assert config.enabled and config.bucket == "tasks" and config.sweep_seconds == 5
    assert (config.prefix, config.region, config.path_style) == ("asynctask/", "us-east-1", True)
    assert (config.threshold_bytes, config.url_seconds, config.grace_seconds) == (
        65536,
        86400,
        3600,
    )


@pytest.mark.parametrize(
    "bad",
    [
        {"endpoint": "http://127.0.0.1:7070"},  # no bucket
        {"endpoint": "s3.example", "bucket": "abc"},  # not a URL
        {"prefix": "no-slash"},
        {"prefix": "/abs/"},
        {"url_seconds": 8 * 24 * 3600},  # past SigV4's 7 days
    ],
)
def test_settings_refuse_what_cannot_work(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PayloadConfig.model_validate(bad)


def test_an_empty_endpoint_is_off() -> None:
    assert not PayloadConfig.model_validate({"endpoint": "", "bucket": ""}).enabled
