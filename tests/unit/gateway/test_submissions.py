"""What a client POSTs and the AsyncTask it becomes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from asynctask_gateway.submissions import (
    CREATED_BY,
    REQUEST_HASH,
    TaskRequest,
    idempotent_name,
    manifest,
    parse_idempotency_key,
    request_hash,
)
from asynctask_operator.spec import AsyncTaskSpec


def test_the_body_is_the_operators_spec_model() -> None:
    assert issubclass(TaskRequest, AsyncTaskSpec)
    req = TaskRequest.model_validate(
        {
            "queue": "q",
            "request": {"a": 1},
            "timeoutSeconds": 60,
            "webhook": {"url": "https://x.example"},
        }
    )
    assert req.timeout_seconds == 60


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"queue": "q", "extra": 1}, "extra"),
        ({"queue": "Not A Queue"}, "queue"),
        ({"queue": "q", "timeoutSeconds": "soon"}, "timeoutSeconds"),
        ({"queue": "q", "retries": 11}, "retries"),
        ({"queue": "q", "labels": {"bad key!": "x"}}, "labels"),
        ({"queue": "q", "cancel": True}, ""),
        ({}, "queue"),
    ],
)
def test_invalid_bodies_are_refused(body: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        TaskRequest.model_validate(body)
    assert field in str(info.value)


def test_the_manifest_carries_the_spec_the_creator_and_the_digest() -> None:
    body = {"queue": "q", "request": {"x": 1}, "retries": 2, "labels": {"team": "a"}}
    req = TaskRequest.model_validate(body)
    obj = manifest(req, "ns", user="alice", digest=request_hash(body))
    assert obj["metadata"]["generateName"] == "task-" and "name" not in obj["metadata"]
    assert obj["metadata"]["labels"] == {"team": "a"}
    assert obj["metadata"]["annotations"][CREATED_BY] == "alice"
    assert obj["metadata"]["annotations"][REQUEST_HASH] == request_hash(body)
    assert obj["spec"] == {"queue": "q", "request": {"x": 1}, "retries": 2}
    named = manifest(
        TaskRequest.model_validate({"queue": "q", "name": "mine"}), "ns", user="alice", digest="d"
    )
    assert named["metadata"]["name"] == "mine" and named["spec"] == {"queue": "q"}


def test_the_request_hash_ignores_key_order_and_whitespace() -> None:
    assert request_hash({"a": 1, "b": [1, 2]}) == request_hash({"b": [1, 2], "a": 1})
    assert request_hash({"a": 1}) != request_hash({"a": 2})


def test_idempotent_names_are_deterministic_and_per_caller() -> None:
    name = idempotent_name("ns", "alice", "k1")
    assert name == idempotent_name("ns", "alice", "k1")
    assert name != idempotent_name("ns", "bob", "k1") != idempotent_name("ns2", "alice", "k1")
    assert name.startswith("t-") and len(name) <= 63 and name == name.lower()


def test_idempotency_key_header() -> None:
    assert parse_idempotency_key(None) is None
    assert parse_idempotency_key('"abc"') == "abc"
    assert parse_idempotency_key("abc") == "abc"
    for bad in ('""', "x" * 256, "caf\u00e9"):
        with pytest.raises(ValueError, match="Idempotency-Key"):
            parse_idempotency_key(bad)


def test_not_before_passes_into_the_spec_as_given() -> None:
    req = TaskRequest.parse({"queue": "q", "notBefore": "2030-01-01T12:00:00.25+01:00"})
    assert req.spec() == {"queue": "q", "notBefore": "2030-01-01T12:00:00.25+01:00"}


@pytest.mark.parametrize(
    "value", ["2030-01-01", "2030-01-01 12:00:00Z", "2030-13-01T12:00:00Z", "noon", 1893499200]
)
def test_a_not_before_that_is_not_an_rfc3339_time_is_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="notBefore"):
        TaskRequest.parse({"queue": "q", "notBefore": value})
