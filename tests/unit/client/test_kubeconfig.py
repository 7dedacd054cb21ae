"""Reading kubeconfigs the way kubectl does, without the kubernetes package."""

from __future__ import annotations

import base64
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from asynctask_client import ConfigError, kubeconfig


def write(
    path: Path,
    *,
    context: str = "dev",
    user: dict[str, Any] | None = None,
    cluster: dict[str, Any] | None = None,
    namespace: str | None = "team",
) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "current-context": context,
        "clusters": [{"name": "c", "cluster": cluster or {"server": "http://127.0.0.1:1"}}],
        "users": [{"name": "u", "user": user or {"token": "abc"}}],
        "contexts": [
            {"name": "dev", "context": {"cluster": "c", "user": "u", "namespace": namespace}},
            {"name": "other", "context": {"cluster": "c", "user": "u"}},
        ],
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_current_context_its_namespace_and_its_token(tmp_path: Path) -> None:
    conn = kubeconfig.load(str(write(tmp_path / "config")))
    assert (conn.server, conn.namespace, conn.token()) == ("http://127.0.0.1:1", "team", "abc")
    assert conn.ssl_context is None  # plain http: no TLS
    other = kubeconfig.load(str(tmp_path / "config"), context="other")
    assert other.namespace == "default"
    assert kubeconfig.load(str(tmp_path / "config"), namespace="x").namespace == "x"
    with pytest.raises(ConfigError, match='no context "nope"'):
        kubeconfig.load(str(tmp_path / "config"), context="nope")


def test_kubeconfig_lists_merge_and_the_first_file_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = write(tmp_path / "a", user={"token": "first"})
    second = write(tmp_path / "b", user={"token": "second"}, context="other")
    monkeypatch.setenv("KUBECONFIG", f"{first}:{tmp_path / 'missing'}:{second}")
    conn = kubeconfig.load()
    assert conn.token() == "first" and conn.namespace == "team"


def test_token_files_are_read_on_each_call(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("one\n")
    conn = kubeconfig.load(str(write(tmp_path / "config", user={"tokenFile": str(token)})))
    assert conn.token() == "one"
    token.write_text("two")  # rotated
    assert conn.token() == "two"


def test_an_exec_plugin_is_run_and_its_token_cached_until_it_expires(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    counter = tmp_path / "runs"
    plugin.write_text(
        "import json, os, pathlib, sys\n"
        f"p = pathlib.Path({str(counter)!r}); n = int(p.read_text()) + 1 if p.exists() else 1\n"
        "p.write_text(str(n))\n"
        "info = json.loads(os.environ['KUBERNETES_EXEC_INFO'])\n"
        "assert info['kind'] == 'ExecCredential', info\n"
        "print(json.dumps({'kind': 'ExecCredential', 'status': {'token': f'tok-{n}-' + "
        "os.environ['EXTRA'], 'expirationTimestamp': sys.argv[1]}}))\n"
    )
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1",
            "command": sys.executable,
            "args": [str(plugin), "2999-01-01T00:00:00Z"],
            "env": [{"name": "EXTRA", "value": "x"}],
        }
    }
    conn = kubeconfig.load(str(write(tmp_path / "config", user=user)))
    assert conn.token() == "tok-1-x" and conn.token() == "tok-1-x"
    expired = dict(user["exec"], args=[str(plugin), "2000-01-01T00:00:00Z"])
    conn = kubeconfig.load(str(write(tmp_path / "config", user={"exec": expired})))
    assert conn.token() == "tok-2-x" and conn.token() == "tok-3-x"  # expired: run again


def test_a_failing_exec_plugin_and_auth_providers_are_clear_errors(tmp_path: Path) -> None:
    failing = {
        "exec": {"command": sys.executable, "args": ["-c", "import sys; sys.exit('no login')"]}
    }
    conn = kubeconfig.load(str(write(tmp_path / "config", user=failing)))
    with pytest.raises(ConfigError, match="exited 1: no login"):
        conn.token()
    with pytest.raises(ConfigError, match="auth-provider"):
        kubeconfig.load(str(write(tmp_path / "config", user={"auth-provider": {"name": "gcp"}})))


def test_inline_certificates_become_the_tls_context(tmp_path: Path) -> None:
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=me",
            "-days",
            "1",
            "-keyout",
            str(tmp_path / "key.pem"),
            "-out",
            str(tmp_path / "cert.pem"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    cert = (tmp_path / "cert.pem").read_bytes()
    cluster = {
        "server": "https://127.0.0.1:1",
        "certificate-authority-data": base64.b64encode(cert).decode(),
    }
    user = {
        "client-certificate-data": base64.b64encode(cert).decode(),
        "client-key": str(tmp_path / "key.pem"),
    }
    conn = kubeconfig.load(str(write(tmp_path / "config", cluster=cluster, user=user)))
    assert isinstance(conn.ssl_context, ssl.SSLContext)
    assert conn.ssl_context.verify_mode is ssl.CERT_REQUIRED
    assert len(conn.ssl_context.get_ca_certs()) == 1 and conn.token() is None
    insecure = dict(cluster, **{"insecure-skip-tls-verify": True})
    conn = kubeconfig.load(str(write(tmp_path / "config", cluster=insecure)))
    assert conn.ssl_context is not None and conn.ssl_context.verify_mode is ssl.CERT_NONE


def test_in_a_pod_without_a_kubeconfig_the_service_account_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = tmp_path / "sa"
    account.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=ca",
            "-days",
            "1",
            "-keyout",
            str(tmp_path / "k"),
            "-out",
            str(account / "ca.crt"),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    (account / "token").write_text("sa-token")
    (account / "namespace").write_text("jobs")
    monkeypatch.setattr(kubeconfig, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "none"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    conn = kubeconfig.load()
    assert (conn.server, conn.namespace, conn.token()) == (
        "https://10.96.0.1:443",
        "jobs",
        "sa-token",
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigError, match="no kubeconfig found"):
        kubeconfig.load()
