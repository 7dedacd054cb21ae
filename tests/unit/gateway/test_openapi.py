"""The OpenAPI document: the checked-in copy is current, and the app serves exactly the
routes it documents (no undocumented route, no documented route missing)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes import client as k8s_client
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV31SpecValidator
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from asynctask_gateway import patterns
from asynctask_gateway.app import make_app, make_gateway
from asynctask_gateway.kube import Kube
from asynctask_gateway.listing import MAX_LIMIT
from asynctask_gateway.openapi import COMMON, PROBLEMS, build_document, render
from asynctask_gateway.routes import API_ROUTES
from asynctask_gateway.settings import GatewaySettings
from asynctask_worker.messages import Phase

REPO = Path(__file__).resolve().parents[3]


def served_routes() -> set[tuple[str, str]]:
    cfg = k8s_client.Configuration()
    cfg.host = "http://127.0.0.1:9"  # never contacted: the app is only built
    app = make_app(make_gateway(GatewaySettings(), Kube(cfg)))
    return {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }


def test_the_checked_in_document_is_current() -> None:
    assert (REPO / "docs" / "openapi.json").read_text() == render(), (
        "regenerate: python -m asynctask_gateway.openapi > docs/openapi.json"
    )


def test_served_routes_and_the_document_agree() -> None:
    doc = json.loads((REPO / "docs" / "openapi.json").read_text())
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert served_routes() == documented


def test_every_api_operation_names_its_kubernetes_verbs_and_problems() -> None:
    doc = build_document()
    for route in API_ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        assert op["x-kubernetes-verbs"] == list(route.verbs)
        for code in ("401", "403"):
            assert "application/problem+json" in op["responses"][code]["content"]


def test_the_schemas_are_the_shared_models() -> None:
    schemas = build_document()["components"]["schemas"]
    assert "createdAt" in schemas["TaskView"]["properties"]
    assert schemas["TaskRequest"]["additionalProperties"] is False
    assert schemas["TaskRequest"]["properties"]["queue"]["pattern"]


def test_the_document_is_valid_openapi_3_1() -> None:
    """A second reader of the document: openapi-spec-validator's OpenAPI 3.1 rules (every
    path parameter declared, every $ref resolvable, schemas valid JSON Schema 2020-12)."""
    doc = json.loads((REPO / "docs" / "openapi.json").read_text())
    validate(doc, cls=OpenAPIV31SpecValidator)


def test_a_broken_document_is_refused_by_the_validator() -> None:
    doc = build_document()
    del doc["paths"]["/ui/{file}"]["get"]["parameters"]
    with pytest.raises(OpenAPIValidationError):
        validate(doc, cls=OpenAPIV31SpecValidator)


def test_every_route_answers_the_common_problems_and_names_their_types() -> None:
    doc = build_document()
    for route in API_ROUTES:
        responses = doc["paths"][route.path][route.method.lower()]["responses"]
        for code in (*route.answers, *COMMON):
            assert str(code) in responses
            if code >= 400:
                assert responses[str(code)]["description"] == PROBLEMS[code]
    task = doc["paths"]["/v1/namespaces/{namespace}/tasks/{name}"]["get"]["responses"]
    assert "400" in task  # InvalidName


def test_parameters_carry_the_validators_patterns_and_bounds() -> None:
    doc = build_document()
    listing = doc["paths"]["/v1/namespaces/{namespace}/tasks"]["get"]["parameters"]
    by_name = {p["name"]: p["schema"] for p in listing}
    assert by_name["phase"]["enum"] == [p.value for p in Phase]
    assert (by_name["limit"]["minimum"], by_name["limit"]["maximum"]) == (1, MAX_LIMIT)
    assert by_name["labelSelector"]["pattern"] == patterns.LABEL_SELECTOR
    assert by_name["namespace"]["pattern"] == patterns.NAMESPACE_PATTERN
    create = doc["paths"]["/v1/namespaces/{namespace}/tasks"]["post"]["parameters"]
    key = next(p for p in create if p["name"] == "Idempotency-Key")
    assert key["schema"]["pattern"] == patterns.IDEMPOTENCY_KEY
    request = doc["components"]["schemas"]["TaskRequest"]["properties"]
    assert request["cancel"]["const"] is False
    assert request["name"]["anyOf"][0]["pattern"] == patterns.NAME_PATTERN
