"""The operator's own Kubernetes API calls, but the watch and the Lease: in the task logic's
words.

AsyncTask status writes, deletions (TTL), Secret reads (webhook signing keys), Events, and
the worker Deployments the autoscaler lists and scales. Each is one request of the
process's one :class:`apiclient.ApiClient` (the watch and the Lease share it), and its
failures are told in :mod:`errors`' words: :class:`errors.Gone`, :class:`errors.Rejected`,
:class:`errors.Unavailable`; any other answer raises :class:`apiclient.ApiError`.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from asynctask_operator.apiserver.apiclient import METADATA_ONLY, ApiClient, ApiError
from asynctask_operator.apiserver.resource import queues_path, tasks_path
from asynctask_operator.errors import Gone, Rejected
from asynctask_operator.limits import API_ERROR_CHARS

#: Deployments' and their scale subresource's API.
APPS = "/apis/apps/v1"


#: A status write's path below the object's (see :func:`replace_status_of`).
STATUS_WRITE = "/status?fieldValidation=Ignore"


@dataclass(frozen=True)
class Deployment:
    """A worker Deployment as the autoscaler needs it."""

    namespace: str
    name: str
    replicas: int  # spec.replicas (1 if unset, as the apiserver defaults it)
    annotations: dict[str, str]


async def replace_status_of(
    client: ApiClient, path: str, uid: str, status: dict[str, Any], *, what: str
) -> dict[str, Any]:
    """Replace the status of the object at ``path`` (a task or a schedule) in one JSON patch
    that tests ``/metadata/uid``: :class:`errors.Gone` if the object is gone or is another
    one under the same name, :class:`errors.Rejected` if the apiserver refuses the status.
    ``what`` names the object in the error (``namespace/name``). Returns the object's
    metadata only (a ``PartialObjectMetadata``): nobody reads the rest of the answer, and
    the whole object (its status with the result, its spec with the request) would cost the
    apiserver its encoding and this process its decryption and parsing, on every write.

    ``fieldValidation=Ignore``: the apiserver does not look for unknown or duplicate fields
    (by default it does, to warn: it decodes the patch twice and the patched object
    strictly, on every write). The operator writes the fields of the CRD's schema from a
    dict, and nobody reads the warnings; an unknown field is pruned either way."""
    body = [
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "add", "path": "/status", "value": status},
    ]
    try:
        return await client.call(
            "PATCH",
            path + STATUS_WRITE,
            body=body,
            content_type="application/json-patch+json",
            accept=METADATA_ONLY,
        )
    except ApiError as exc:
        if exc.status == 404 or (exc.status == 422 and "testing value" in exc.message):
            raise Gone(what) from exc
        if exc.status == 422:
            raise Rejected(exc.message[:API_ERROR_CHARS]) from exc
        raise


class Kube:
    """The calls of ``ports.OperatorApi`` and ``scaling.DeploymentApi`` on one client."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        try:
            return await self._client.call("GET", tasks_path(namespace, name))
        except ApiError as exc:
            if exc.status == 404:
                raise Gone(f"{namespace}/{name}") from exc
            raise

    async def replace_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        """Write the whole status in one PATCH, only if the object is still ``uid``.

        A JSON patch with a ``test`` on ``/metadata/uid`` makes the write conditional: a
        task deleted and re-created under the same name is never given the old one's status.
        """
        return await replace_status_of(
            self._client, tasks_path(namespace, name), uid, status, what=f"{namespace}/{name}"
        )

    async def delete(self, namespace: str, name: str, uid: str) -> None:
        """Delete the object if it is still ``uid`` (a precondition, not a race)."""
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "preconditions": {"uid": uid},
            "propagationPolicy": "Background",
        }
        try:
            await self._client.call("DELETE", tasks_path(namespace, name), body=body)
        except ApiError as exc:
            if exc.status in (404, 409):
                raise Gone(f"{namespace}/{name}") from exc
            raise

    async def read_secret_key(self, namespace: str, name: str, key: str) -> bytes:
        """The value of one key of a Secret (webhook signing keys; read with ``get``)."""
        secret = await self._client.call("GET", f"/api/v1/namespaces/{namespace}/secrets/{name}")
        data = (secret.get("data") or {}).get(key)
        if data is None:
            raise KeyError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data)

    async def patch_queue_status(self, name: str, status: dict[str, Any]) -> None:
        """Write an AsyncQueue's status (merge patch of the status subresource)."""
        try:
            await self._client.call(
                "PATCH",
                queues_path(None, name) + "/status",
                body={"status": status},
                content_type="application/merge-patch+json",
            )
        except ApiError as exc:
            if exc.status == 404:
                raise Gone(name) from exc
            raise

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        await self._client.call("POST", f"/api/v1/namespaces/{namespace}/events", body=body)

    async def list_deployments(
        self, namespaces: Sequence[str | None], label_selector: str
    ) -> list[Deployment]:
        """The Deployments matching ``label_selector`` in each namespace (None: all of them),
        except those being deleted."""
        items: list[dict[str, Any]] = []
        for namespace in namespaces:
            path = (
                f"{APPS}/namespaces/{namespace}/deployments" if namespace else f"{APPS}/deployments"
            )
            found = await self._client.call("GET", path, params={"labelSelector": label_selector})
            items += found.get("items") or []
        return [_deployment(d) for d in items if not d["metadata"].get("deletionTimestamp")]

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        """Set a Deployment's replicas through its scale subresource (replicas only)."""
        await self._client.call(
            "PATCH",
            f"{APPS}/namespaces/{namespace}/deployments/{name}/scale",
            body={"spec": {"replicas": replicas}},
            content_type="application/merge-patch+json",
            seconds=10,
        )


def _deployment(obj: dict[str, Any]) -> Deployment:
    meta, replicas = obj["metadata"], (obj.get("spec") or {}).get("replicas")
    return Deployment(
        meta["namespace"],
        meta["name"],
        1 if replicas is None else int(replicas),
        dict(meta.get("annotations") or {}),
    )
