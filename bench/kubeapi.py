"""The benchmarks' own Kubernetes client: asyncio and aiohttp, a few calls, many in flight.

The Python ``kubernetes`` client is synchronous (one call per thread), so measured with it
the apiserver's ceiling would be the client's. This one keeps up to ``connections`` requests
in flight on pooled TLS connections, with the same credentials as kubectl (the kubeconfig
the test bed writes: a client certificate).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

GROUP_VERSION = "asynctask.dev/v1alpha1"


def _kubeconfig_paths(kubeconfig: Path) -> dict[str, str]:
    """server, certificate-authority, client-certificate and client-key of the test bed's
    kubeconfig (flat YAML written by ``testbed.controlplane``; no YAML parser needed)."""
    found: dict[str, str] = {}
    for line in kubeconfig.read_text().splitlines():
        key, _, value = line.strip().partition(": ")
        if key in ("server", "certificate-authority", "client-certificate", "client-key"):
            found[key] = value
    return found


class KubeApi:
    def __init__(self, kubeconfig: Path, connections: int = 64) -> None:
        paths = _kubeconfig_paths(kubeconfig)
        self.server = paths["server"]
        self._ssl = ssl.create_default_context(cafile=paths["certificate-authority"])
        self._ssl.load_cert_chain(paths["client-certificate"], paths["client-key"])
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeApi:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self._ssl, limit=self._connections),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._session is not None
        await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    def _tasks_url(self, namespace: str, name: str = "", sub: str = "") -> str:
        url = f"{self.server}/apis/{GROUP_VERSION}/namespaces/{namespace}/asynctasks"
        return url + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")

    async def _send(
        self, method: str, url: str, body: Any = None, content_type: str = "application/json"
    ) -> dict[str, Any]:
        data = None if body is None else json.dumps(body)
        async with self.session.request(
            method, url, data=data, headers={"Content-Type": content_type}
        ) as resp:
            text = await resp.text()
            if resp.status >= 300:
                raise RuntimeError(f"{method} {url}: {resp.status} {text[:300]}")
            result: dict[str, Any] = json.loads(text)
            return result

    async def create_task(self, namespace: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        return await self._send(
            "POST",
            self._tasks_url(namespace),
            {
                "apiVersion": GROUP_VERSION,
                "kind": "AsyncTask",
                "metadata": {"name": name, "namespace": namespace},
                "spec": spec,
            },
        )

    async def replace_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """The operator's status write exactly: a JSON patch that tests the uid."""
        return await self._send(
            "PATCH",
            self._tasks_url(namespace, name, "status"),
            [
                {"op": "test", "path": "/metadata/uid", "value": uid},
                {"op": "add", "path": "/status", "value": status},
            ],
            "application/json-patch+json",
        )

    async def merge_status(
        self, namespace: str, name: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """The same status as a merge patch (``apiprof.py`` compares the two)."""
        return await self._send(
            "PATCH",
            self._tasks_url(namespace, name, "status"),
            {"status": status},
            "application/merge-patch+json",
        )

    async def get_task(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._send("GET", self._tasks_url(namespace, name))

    async def count_phases(self, namespace: str) -> dict[str, int]:
        """Tasks by phase (one LIST; "" for no phase yet)."""
        body = await self._send("GET", self._tasks_url(namespace))
        counts: dict[str, int] = {}
        for item in body["items"]:
            phase = (item.get("status") or {}).get("phase") or ""
            counts[phase] = counts.get(phase, 0) + 1
        return counts

    async def delete_all(self, namespace: str) -> None:
        """Delete a namespace's AsyncTasks in one call (a collection DELETE)."""
        await self._send("DELETE", self._tasks_url(namespace))

    async def phase(self, namespace: str, name: str) -> str:
        obj = await self._send("GET", self._tasks_url(namespace, name))
        return str((obj.get("status") or {}).get("phase") or "")

    async def list_tasks(self, namespace: str) -> tuple[list[dict[str, Any]], str]:
        """A namespace's AsyncTasks and the list's resourceVersion (to watch from)."""
        body = await self._send("GET", self._tasks_url(namespace))
        return body["items"], str(body["metadata"]["resourceVersion"])

    async def watch(self, namespace: str) -> AsyncIterator[dict[str, Any]]:
        """Every AsyncTask of a namespace as it is now, then as it changes: a LIST, then a
        watch from its resourceVersion; a watch that ends or fails is started again from a
        new LIST (a benchmark must not stall on a lost stream)."""
        while True:
            try:
                items, version = await self.list_tasks(namespace)
                for item in items:
                    yield item
                url = (
                    self._tasks_url(namespace) + "?watch=1&timeoutSeconds=600"
                    f"&resourceVersion={version}"
                )
                async with self.session.get(url) as resp:
                    resp.raise_for_status()
                    while line := await resp.content.readuntil(b"\n"):
                        event = json.loads(line)
                        if event["type"] == "ERROR":
                            break
                        yield event["object"]
            except (aiohttp.ClientError, ValueError, asyncio.IncompleteReadError) as exc:
                print(f"  (the watch of {namespace} ended: {exc!r}; listing again)", flush=True)

    async def request_stats(self) -> dict[str, tuple[float, float]]:
        """Requests served so far by ``VERB resource[/sub]``: (count, seconds spent on
        them), from ``apiserver_request_total`` and ``apiserver_request_duration_seconds``
        (a watch counts once, when it ends; its seconds are its lifetime), plus
        ``watch-events resource``: the events the apiserver sent to watchers."""
        async with self.session.get(f"{self.server}/metrics") as resp:
            text = await resp.text()
        stats: dict[str, list[float]] = {}
        for line in text.splitlines():
            if line.startswith("apiserver_request_total{"):
                key, column = _request_key(line), 0
            elif line.startswith("apiserver_request_duration_seconds_sum{"):
                key, column = _request_key(line), 1
            elif line.startswith("apiserver_watch_events_total{"):
                key, column = "watch-events " + _label(line, "resource"), 0
            else:
                continue
            stats.setdefault(key, [0.0, 0.0])[column] += float(line.rsplit(" ", 1)[1])
        return {k: (v[0], v[1]) for k, v in stats.items()}

    async def request_count(self, verb: str, resource: str) -> float:
        """apiserver_request_total for ``verb`` (GET, LIST, WATCH...) on ``resource``."""
        async with self.session.get(f"{self.server}/metrics") as resp:
            text = await resp.text()
        total = 0.0
        for line in text.splitlines():
            if (
                line.startswith("apiserver_request_total{")
                and f'verb="{verb}"' in line
                and f'resource="{resource}"' in line
            ):
                total += float(line.rsplit(" ", 1)[1])
        return total


def _label(line: str, name: str) -> str:
    start = line.find(f'{name}="')
    if start < 0:
        return ""
    start += len(name) + 2
    return line[start : line.index('"', start)]


def _request_key(line: str) -> str:
    sub = _label(line, "subresource")
    return f"{_label(line, 'verb')} {_label(line, 'resource')}" + (f"/{sub}" if sub else "")
