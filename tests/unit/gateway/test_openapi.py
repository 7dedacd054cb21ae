"""The OpenAPI document: the checked-in copy is current, and the app serves exactly the
routes it documents (no undocumented route, no documented route missing)."""

from __future__ import annotations

import json
from pathlib import Path

from kubernetes import client as k8s_client

from asynctask_gateway.app import make_app, make_gateway
from asynctask_gateway.kube import Kube
from asynctask_gateway.openapi import build_document, render
from asynctask_gateway.routes import API_ROUTES
from asynctask_gateway.settings import GatewaySettings

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
