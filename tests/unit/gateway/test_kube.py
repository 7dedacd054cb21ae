"""The gateway's apiserver client configuration (no apiserver needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asynctask_gateway.kube import Kube, authorization, load_configuration, tasks_path

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:9"}}]
users: [{name: u, user: {token: secret-token}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_the_gateways_own_token_header_whatever_the_loader_stored() -> None:
    assert authorization("Bearer abc") == "Bearer abc"  # kubeconfig loader
    assert authorization("bearer abc") == "Bearer abc"  # in-cluster loader
    assert authorization("abc") == "Bearer abc"


def test_kubeconfig_is_read_when_the_configuration_is_loaded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(path))
    kube = Kube(load_configuration())
    assert kube.host == "http://127.0.0.1:9"
    assert kube._headers()["Authorization"] == "Bearer secret-token"
    assert (
        kube._headers("application/merge-patch+json")["Content-Type"]
        == "application/merge-patch+json"
    )


def test_paths() -> None:
    assert tasks_path(None) == "/apis/asynctask.dev/v1alpha1/asynctasks"
    assert tasks_path("ns", "t") == "/apis/asynctask.dev/v1alpha1/namespaces/ns/asynctasks/t"
