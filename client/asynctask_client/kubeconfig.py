"""Where the Kubernetes API is and who we are there: a kubeconfig, or the pod's ServiceAccount.

Read here rather than with the ``kubernetes`` package, so that a client installs with httpx
and PyYAML only. What ``kubectl`` users rely on is covered: ``KUBECONFIG`` with several files
(the first file that sets a key wins), ``--context``, the context's namespace, certificate
authorities and client certificates as files or inline data, ``insecure-skip-tls-verify``,
bearer tokens and token files, and exec credential plugins (``client.authentication.k8s.io``,
the token or certificate they print, cached until its ``expirationTimestamp``). In a pod
without a kubeconfig, the ServiceAccount's token is re-read on each request, since the
kubelet rotates it. Legacy ``auth-provider`` plugins are refused with a clear error.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from asynctask_client.errors import ConfigError

SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@dataclass
class Connection:
    """An apiserver's address, the TLS context to reach it, and how to get a bearer token."""

    server: str
    ssl_context: ssl.SSLContext | None
    namespace: str = "default"
    token: Callable[[], str | None] = field(default=lambda: None)


def kubeconfig_paths(explicit: str | None = None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    listed = os.environ.get("KUBECONFIG")
    if listed:
        return [Path(p).expanduser() for p in listed.split(os.pathsep) if p]
    return [Path.home() / ".kube" / "config"]


def load(
    path: str | None = None, context: str | None = None, namespace: str | None = None
) -> Connection:
    """The connection a kubectl with these flags would use; in a pod with no kubeconfig
    file, the pod's ServiceAccount."""
    files = [p for p in kubeconfig_paths(path) if p.is_file()]
    if not files:
        if os.environ.get("KUBERNETES_SERVICE_HOST") and not path:
            return in_cluster(namespace)
        raise ConfigError(
            "no kubeconfig found (looked for "
            + ", ".join(str(p) for p in kubeconfig_paths(path))
            + "); set KUBECONFIG, or use --gateway"
        )
    config = merge([_read(p) for p in files])
    return from_config(config, context, namespace, base=files[0].parent)


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the kubeconfig {path}: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"the kubeconfig {path} is not a YAML mapping")
    return doc


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """kubectl's merge: named entries and current-context from the first file that has them."""
    merged: dict[str, Any] = {"clusters": {}, "users": {}, "contexts": {}}
    for doc in docs:
        for kind in ("clusters", "users", "contexts"):
            for entry in doc.get(kind) or []:
                merged[kind].setdefault(entry.get("name"), entry.get(kind[:-1]) or {})
        if not merged.get("current-context"):
            merged["current-context"] = doc.get("current-context") or None
    return merged


def from_config(
    config: Mapping[str, Any], context: str | None, namespace: str | None, base: Path
) -> Connection:
    name = context or config.get("current-context")
    if not name:
        raise ConfigError("the kubeconfig has no current-context; pass --context")
    ctx = config["contexts"].get(name)
    if ctx is None:
        raise ConfigError(f'the kubeconfig has no context "{name}"')
    cluster = config["clusters"].get(ctx.get("cluster"))
    if cluster is None or not cluster.get("server"):
        raise ConfigError(f'the context "{name}" names no cluster with a server')
    user = config["users"].get(ctx.get("user")) or {}
    tls = _tls(cluster, user, base)
    return Connection(
        server=str(cluster["server"]).rstrip("/"),
        ssl_context=tls,
        namespace=namespace or ctx.get("namespace") or "default",
        token=_token_source(user, base, tls),
    )


def _data_or_file(entry: Mapping[str, Any], key: str, base: Path) -> bytes | None:
    if entry.get(f"{key}-data"):
        return base64.b64decode(entry[f"{key}-data"])
    if entry.get(key):
        path = Path(entry[key]).expanduser()
        return (path if path.is_absolute() else base / path).read_bytes()
    return None


def _tls(cluster: Mapping[str, Any], user: Mapping[str, Any], base: Path) -> ssl.SSLContext | None:
    if not str(cluster.get("server", "")).startswith("https"):
        return None
    ca = _data_or_file(cluster, "certificate-authority", base)
    ctx = ssl.create_default_context(cadata=ca.decode() if ca else None)
    if cluster.get("insecure-skip-tls-verify"):
        ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    cert = _data_or_file(user, "client-certificate", base)
    key = _data_or_file(user, "client-key", base)
    if cert and key:
        load_cert_chain(ctx, cert, key)
    return ctx


def load_cert_chain(ctx: ssl.SSLContext, cert: bytes, key: bytes) -> None:
    """ssl loads certificates from files only: a private temporary one, removed at once."""
    with tempfile.TemporaryDirectory(prefix="asynctask-") as tmp:
        pem = Path(tmp) / "client.pem"
        pem.touch(mode=0o600)
        pem.write_bytes(cert.rstrip(b"\n") + b"\n" + key)
        ctx.load_cert_chain(pem)


def _token_source(
    user: Mapping[str, Any], base: Path, tls: ssl.SSLContext | None
) -> Callable[[], str | None]:
    if user.get("auth-provider"):
        raise ConfigError("auth-provider plugins are not supported; use an exec plugin")
    if user.get("token"):
        token = str(user["token"])
        return lambda: token
    if user.get("tokenFile"):
        path = Path(user["tokenFile"]).expanduser()
        return lambda: path.read_text().strip()
    if user.get("exec"):
        return ExecPlugin(user["exec"], base, tls)
    return lambda: None


class ExecPlugin:
    """An exec credential plugin, run when its credential is missing or expired."""

    def __init__(self, spec: Mapping[str, Any], base: Path, tls: ssl.SSLContext | None) -> None:
        self.spec, self.base, self.tls = spec, base, tls
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires = 0.0

    def __call__(self) -> str | None:
        with self._lock:
            if self._expires <= time.time():
                self._run()
            return self._token

    def _run(self) -> None:
        version = self.spec.get("apiVersion") or "client.authentication.k8s.io/v1"
        env = dict(
            os.environ,
            KUBERNETES_EXEC_INFO=json.dumps(
                {"apiVersion": version, "kind": "ExecCredential", "spec": {"interactive": False}}
            ),
        )
        env.update({e["name"]: e["value"] for e in self.spec.get("env") or []})
        try:
            done = subprocess.run(
                [self.spec["command"], *(self.spec.get("args") or [])],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
                cwd=self.base,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ConfigError(f"the exec plugin {self.spec.get('command')} failed: {exc}") from exc
        if done.returncode != 0:
            raise ConfigError(
                f"the exec plugin {self.spec['command']} exited "
                f"{done.returncode}: {done.stderr.strip()[:500]}"
            )
        status = (json.loads(done.stdout or "{}").get("status")) or {}
        self._token = status.get("token")
        if status.get("clientCertificateData") and self.tls is not None:
            load_cert_chain(
                self.tls, status["clientCertificateData"].encode(), status["clientKeyData"].encode()
            )
        expiry = status.get("expirationTimestamp")
        self._expires = (
            (datetime.fromisoformat(expiry.replace("Z", "+00:00")).timestamp() - 10)
            if expiry
            else float("inf")
        )


def in_cluster(namespace: str | None = None) -> Connection:
    host, port = (
        os.environ["KUBERNETES_SERVICE_HOST"],
        os.environ.get("KUBERNETES_SERVICE_PORT", "443"),
    )
    host = f"[{host}]" if ":" in host else host
    token_file = SERVICE_ACCOUNT / "token"
    ctx = ssl.create_default_context(cafile=str(SERVICE_ACCOUNT / "ca.crt"))
    ns_file = SERVICE_ACCOUNT / "namespace"
    default_ns = ns_file.read_text().strip() if ns_file.is_file() else "default"
    return Connection(
        server=f"https://{host}:{port}",
        ssl_context=ctx,
        namespace=namespace or default_ns,
        token=lambda: token_file.read_text().strip(),
    )
