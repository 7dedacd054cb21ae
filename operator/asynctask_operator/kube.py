"""The operator's own Kubernetes API calls, but the watch (:mod:`task_watch`): all of them.

AsyncTask status writes, deletions (TTL), Secret reads (webhook signing keys), Events, and
the worker Deployments the autoscaler lists and scales. Nothing else in the operator
imports the Kubernetes client.

The official client is synchronous; calls run in a small thread pool so they never
block kopf's event loop.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import urllib3.exceptions
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from asynctask_operator.limits import API_ERROR_CHARS
from asynctask_operator.resource import GROUP, PLURAL, VERSION

log = logging.getLogger("asynctask.operator.kube")

#: What a failed API call may raise (an HTTP error, or the connection failed).
API_ERRORS = (ApiException, OSError, urllib3.exceptions.HTTPError)


def unavailable(exc: BaseException) -> bool:
    """The apiserver could not be reached, or answered "not now" (429, 5xx): the same call
    is worth making again later, unchanged (an outage, a restart, overload)."""
    if isinstance(exc, ApiException):
        return not exc.status or exc.status == 429 or exc.status >= 500
    return isinstance(exc, (OSError, urllib3.exceptions.HTTPError))


@dataclass(frozen=True)
class Deployment:
    """A worker Deployment as the autoscaler needs it."""

    namespace: str
    name: str
    replicas: int  # spec.replicas (1 if unset, as the apiserver defaults it)
    annotations: dict[str, str]


class Gone(Exception):
    """The object is gone, or was replaced by another one with the same name."""


class Rejected(Exception):
    """The apiserver refused the write as invalid (e.g. a field over its size limit)."""


class Kube:
    def __init__(self, workers: int = 8) -> None:
        """Load the configuration (in-cluster, else kubeconfig) and start ``workers`` threads."""
        try:
            config.load_incluster_config()  # type: ignore[no-untyped-call]
        except config.ConfigException:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        # One pooled HTTPS connection per thread: urllib3 keeps at most
        # ``connection_pool_maxsize`` (5 per core by default) and opens, then discards, a
        # new connection (a TLS handshake) for each call beyond it.
        conf = client.Configuration.get_default_copy()
        conf.connection_pool_maxsize = max(workers, conf.connection_pool_maxsize or 0)
        api = client.ApiClient(conf)
        self._api = client.CustomObjectsApi(api)
        self._core = client.CoreV1Api(api)
        self._apps = client.AppsV1Api(api)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="asynctask-kube")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, functools.partial(fn, *args, **kwargs)
        )

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            obj: dict[str, Any] = await self._call(
                self._api.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as exc:
            if exc.status == 404:
                raise Gone(f"{namespace}/{name}") from exc
            raise
        return obj

    async def replace_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Write the whole status in one PATCH, only if the object is still ``uid``.

        A JSON patch with a ``test`` on ``/metadata/uid`` makes the write conditional: a
        task deleted and re-created under the same name is never given the old one's status.
        """
        body = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "add", "path": "/status", "value": status},
        ]
        try:
            obj: dict[str, Any] = await self._call(
                self._api.patch_namespaced_custom_object_status,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body,
                _content_type="application/json-patch+json",
            )
        except ApiException as exc:
            if exc.status == 404 or (exc.status == 422 and "testing value" in str(exc.body)):
                raise Gone(f"{namespace}/{name}") from exc
            if exc.status == 422:
                raise Rejected(str(exc.body)[:API_ERROR_CHARS]) from exc
            raise
        return obj

    async def delete(self, namespace: str, name: str, uid: str) -> None:
        """Delete the object if it is still ``uid`` (a precondition, not a race)."""
        body = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid), propagation_policy="Background"
        )
        try:
            await self._call(
                self._api.delete_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                name,
                body=body,
            )
        except ApiException as exc:
            if exc.status in (404, 409):
                raise Gone(f"{namespace}/{name}") from exc
            raise

    async def read_secret_key(self, namespace: str, name: str, key: str) -> bytes:
        """The value of one key of a Secret (webhook signing keys; read with ``get``)."""
        secret = await self._call(self._core.read_namespaced_secret, name, namespace)
        data = (secret.data or {}).get(key)
        if data is None:
            raise KeyError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data)

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        await self._call(self._core.create_namespaced_event, namespace, body)

    async def list_deployments(
        self, namespaces: Sequence[str | None], label_selector: str
    ) -> list[Deployment]:
        """The Deployments matching ``label_selector`` in each namespace (None: all of them),
        except those being deleted. Raises one of :data:`API_ERRORS`."""
        items: list[Any] = []
        for namespace in namespaces:
            if namespace is None:
                found = await self._call(
                    self._apps.list_deployment_for_all_namespaces,
                    label_selector=label_selector,
                    _request_timeout=30,
                )
            else:
                found = await self._call(
                    self._apps.list_namespaced_deployment,
                    namespace,
                    label_selector=label_selector,
                    _request_timeout=30,
                )
            items += found.items
        return [
            Deployment(
                d.metadata.namespace,
                d.metadata.name,
                1 if d.spec.replicas is None else int(d.spec.replicas),
                dict(d.metadata.annotations or {}),
            )
            for d in items
            if d.metadata.deletion_timestamp is None
        ]

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Set a Deployment's replicas through its scale subresource (replicas only)."""
        await self._call(
            self._apps.patch_namespaced_deployment_scale,
            name,
            namespace,
            {"spec": {"replicas": replicas}},
            _request_timeout=10,
        )
