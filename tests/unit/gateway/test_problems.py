"""Errors as RFC 9457 problems; the apiserver's refusals pass through verbatim."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from asynctask_gateway.auth import TTLCache, bearer_token
from asynctask_gateway.kube import ApiError
from asynctask_gateway.problems import (
    PROBLEM_JSON,
    Problem,
    from_api_error,
    from_validation_error,
)
from asynctask_gateway.submissions import TaskRequest

INVALID = {
    "kind": "Status",
    "status": "Failure",
    "reason": "Invalid",
    "code": 422,
    "message": 'AsyncTask.asynctask.dev "x" is invalid: spec.webhook.url: Invalid '
    "value: \"ftp://h\": spec.webhook.url in body should match '^https?://'",
    "details": {
        "causes": [
            {
                "reason": "FieldValueInvalid",
                "field": "spec.webhook.url",
                "message": 'Invalid value: "ftp://h"',
            }
        ]
    },
}


def test_admission_refusals_pass_through_with_the_field() -> None:
    problem = from_api_error(ApiError(422, INVALID))
    body = problem.body("/v1/namespaces/ns/tasks")
    assert body["status"] == 422 and body["reason"] == "Invalid"
    assert body["detail"] == INVALID["message"]
    assert body["causes"] == [
        {
            "field": "spec.webhook.url",
            "reason": "FieldValueInvalid",
            "message": 'Invalid value: "ftp://h"',
        }
    ]
    assert body["type"] == "https://asynctask.dev/problems/invalid"
    assert body["instance"] == "/v1/namespaces/ns/tasks"


def test_the_gateways_own_refusal_is_not_blamed_on_the_caller() -> None:
    problem = from_api_error(ApiError(403, {"reason": "Forbidden", "message": "no"}))
    assert problem.status == 502 and "ServiceAccount" in problem.detail


def test_conflicts_and_not_found_keep_their_status() -> None:
    assert from_api_error(ApiError(404, {"reason": "NotFound", "message": "x"})).status == 404
    assert from_api_error(ApiError(409, {"reason": "AlreadyExists"})).reason == "AlreadyExists"


def test_validation_errors_name_each_field() -> None:
    with pytest.raises(ValidationError) as info:
        TaskRequest.model_validate({"queue": 5, "retries": "x", "bogus": 1})
    problem = from_validation_error(info.value)
    fields = {c["field"]: c["reason"] for c in problem.causes}
    assert fields == {
        "queue": "FieldValueInvalid",
        "retries": "FieldValueInvalid",
        "bogus": "FieldValueNotSupported",
    }
    assert problem.status == 422


def test_the_response_is_problem_json() -> None:
    response = Problem(429, "TooManyRequests", "slow down", headers={"Retry-After": "5"}).response(
        "/x"
    )
    assert response.headers["Content-Type"] == PROBLEM_JSON
    assert response.headers["Retry-After"] == "5"
    assert response.body is not None
    assert json.loads(bytes(response.body))["title"] == "Too Many Requests"  # type: ignore[arg-type]


def test_bearer_tokens_come_from_the_header_only() -> None:
    assert bearer_token(None) is None
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for bad in ("Basic abc", "Bearer", "abc"):
        with pytest.raises(Problem) as info:
            bearer_token(bad)
        assert info.value.status == 401


def test_ttl_cache_expires_and_stays_bounded() -> None:
    cache: TTLCache[bool] = TTLCache(ttl=60, max_size=3)
    for i in range(5):
        cache.put(i, True)
    assert len(cache._items) <= 3
    cache.put("x", True)
    assert cache.get("x") is True
    expired: TTLCache[bool] = TTLCache(ttl=-1)
    expired.put("x", True)
    assert expired.get("x") is None  # ttl <= 0: never kept
