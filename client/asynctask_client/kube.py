"""The Kubernetes API transport: the AsyncTask objects themselves, as ``kubectl`` reaches them.

Following a task is a watch on that one object (``fieldSelector=metadata.name=...``) from
the last resourceVersion seen; a watch that is too old (``410 Gone``) starts again from a
fresh GET. An idempotency key names the object (``k-`` + a digest of namespace and key) and
the request's digest is recorded in the ``asynctask.dev/request-hash`` annotation, so a
retry finds the task it created, and the same key with another request is refused.
"""

from __future__ import annotations

import builtins
import json
import math
import urllib.parse
from collections.abc import Generator, Iterator
from typing import Any

from asynctask_client.errors import ApiError, TaskDeleted
from asynctask_client.http import Http
from asynctask_client.kubeconfig import Connection
from asynctask_client.transport import (
    API,
    GROUP,
    REQUEST_HASH,
    Details,
    Submission,
    idempotent_name,
    request_hash,
)
from asynctask_worker.bulk import Action, BulkAnswer, BulkItem, acted, cancel_skipped, failed, gone
from asynctask_worker.resource_views import (
    QueueView,
    ScheduleView,
    manual_task,
    queue_view,
    schedule_view,
)
from asynctask_worker.views import TaskView, task_view

KIND = "AsyncTask"
MAX_WATCH = 300


#: Why the history routes need the gateway: only it reads the archive (docs/history.md).
HISTORY_THROUGH_GATEWAY = (
    "the history archive is read through the gateway (--gateway URL or "
    "ASYNCTASK_GATEWAY); the apiserver holds live tasks only"
)


class KubeTransport:
    """Calls to the apiserver with the kubeconfig's (or the pod's) identity."""

    kind = "kubernetes"

    def __init__(self, connection: Connection) -> None:
        self.namespace = connection.namespace
        verify = connection.ssl_context if connection.ssl_context is not None else True
        self.http = Http(connection.server, token=connection.token, verify=verify)

    def _path(self, name: str | None = None) -> str:
        base = f"{API}/namespaces/{urllib.parse.quote(self.namespace)}/asynctasks"
        return f"{base}/{urllib.parse.quote(name)}" if name else base

    def manifest(self, submission: Submission, key: str | None) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "namespace": self.namespace,
            "annotations": {REQUEST_HASH: request_hash(submission.body())},
        }
        if submission.labels:
            metadata["labels"] = dict(submission.labels)
        name = submission.name or (idempotent_name(self.namespace, key) if key else None)
        if name:
            metadata["name"] = name
        else:
            metadata["generateName"] = "task-"
        return {
            "apiVersion": f"{GROUP}/v1alpha1",
            "kind": KIND,
            "metadata": metadata,
            "spec": submission.spec,
        }

    def create(
        self, submission: Submission, *, idempotency_key: str | None, wait: float | None
    ) -> TaskView:
        body = self.manifest(submission, idempotency_key)
        try:
            _, obj = self.http.call("POST", self._path(), body=body)
        except ApiError as exc:
            if exc.status != 409 or idempotency_key is None:
                raise
            obj = self._existing(body)
        return task_view(obj)

    def _existing(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        _, obj = self.http.call("GET", self._path(name))
        found = ((obj.get("metadata") or {}).get("annotations") or {}).get(REQUEST_HASH)
        if found != body["metadata"]["annotations"][REQUEST_HASH]:
            raise ApiError(
                422,
                "IdempotencyKeyReused",
                f'this idempotency key created the task "{name}" with another request',
            )
        return obj

    def get(self, name: str, *, archived: bool = False) -> TaskView:
        if archived:
            raise ApiError(400, "NeedsGateway", HISTORY_THROUGH_GATEWAY)
        return task_view(self.http.call("GET", self._path(name))[1])

    def list(
        self, *, queue: str | None, phase: str | None, label_selector: str | None
    ) -> list[TaskView]:
        params = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        views: list[TaskView] = []
        while True:
            _, answer = self.http.call("GET", self._path(), params=params)
            for obj in answer.get("items") or []:
                view = task_view(obj)
                if (queue is None or (obj.get("spec") or {}).get("queue") == queue) and (
                    phase is None or view.phase.value == phase
                ):
                    views.append(view)
            token = (answer.get("metadata") or {}).get("continue")
            if not token:
                return sorted(views, key=lambda v: v.name)
            params["continue"] = token

    def cancel(self, name: str) -> TaskView:
        view = self.get(name)
        if view.done:
            raise ApiError(
                409, "AlreadyFinished", f'the task "{name}" has already ended ({view.phase.value})'
            )
        _, obj = self.http.call(
            "PATCH",
            self._path(name),
            body={"spec": {"cancel": True}},
            content_type="application/merge-patch+json",
        )
        return task_view(obj)

    def history(self, **filters: str | None) -> builtins.list[TaskView]:
        raise ApiError(400, "NeedsGateway", HISTORY_THROUGH_GATEWAY)

    def resubmit(self, name: str) -> TaskView:
        raise ApiError(400, "NeedsGateway", HISTORY_THROUGH_GATEWAY)

    def delete(self, name: str) -> None:
        self.http.call("DELETE", self._path(name), params={"propagationPolicy": "Background"})

    def bulk(self, action: Action, label_selector: str) -> BulkAnswer:
        """Every matching task listed, then patched or deleted one by one with the caller's
        own credentials: the apiserver authorizes each object."""
        items = [self._act(action, obj) for obj in self._matching(label_selector)]
        return BulkAnswer.of(action, items)

    def _matching(self, label_selector: str) -> builtins.list[dict[str, Any]]:
        params = {"limit": "500", "labelSelector": label_selector}
        objects: builtins.list[dict[str, Any]] = []
        while True:
            _, answer = self.http.call("GET", self._path(), params=params)
            objects += answer.get("items") or []
            token = (answer.get("metadata") or {}).get("continue")
            if not token:
                return sorted(objects, key=lambda o: str((o.get("metadata") or {}).get("name")))
            params["continue"] = token

    def _act(self, action: Action, obj: dict[str, Any]) -> BulkItem:
        view = task_view(obj)
        if action == "cancel":
            skip = cancel_skipped(view, bool((obj.get("spec") or {}).get("cancel")))
            if skip is not None:
                return skip
        try:
            if action == "cancel":
                self.http.call(
                    "PATCH",
                    self._path(view.name),
                    body={"spec": {"cancel": True}},
                    content_type="application/merge-patch+json",
                )
            else:
                self.delete(view.name)
        except ApiError as exc:
            return (
                gone(view.name) if exc.status == 404 else failed(view.name, exc.reason, exc.message)
            )
        return acted(view.name, action)

    def describe(self, name: str) -> Details:
        _, obj = self.http.call("GET", self._path(name))
        selector = (
            f"involvedObject.kind={KIND},involvedObject.name={name},"
            f"involvedObject.uid={(obj.get('metadata') or {}).get('uid', '')}"
        )
        try:
            _, answer = self.http.call(
                "GET",
                f"/api/v1/namespaces/{urllib.parse.quote(self.namespace)}/events",
                params={"fieldSelector": selector},
            )
            events: list[dict[str, Any]] | None = list(answer.get("items") or [])
        except ApiError as exc:
            if exc.status != 403:
                raise
            events = None  # not allowed to read Events: describe says so
        return Details(
            view=task_view(obj),
            spec=obj.get("spec") or {},
            status=obj.get("status") or {},
            events=events,
        )

    def changes(self, name: str, after: str, seconds: float) -> Iterator[TaskView]:
        cursor = after
        while True:
            gone = yield from self._watch(name, cursor, seconds)
            if not gone:
                return
            # The resourceVersion is too old to watch from: the object as it is now, and
            # a watch from the list's resourceVersion.
            _, answer = self.http.call(
                "GET", self._path(), params={"fieldSelector": f"metadata.name={name}"}
            )
            items = answer.get("items") or []
            if not items:
                raise TaskDeleted(self.namespace, name)
            current = task_view(items[0])
            if current.resource_version != after:
                yield current
            cursor = str((answer.get("metadata") or {}).get("resourceVersion") or "")

    def _watch(self, name: str, cursor: str, seconds: float) -> Generator[TaskView, None, bool]:
        """One watch request; ``True`` when the apiserver answered ``410 Gone``."""
        params = {
            "watch": "1",
            "fieldSelector": f"metadata.name={name}",
            "resourceVersion": cursor,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(max(1, min(MAX_WATCH, math.ceil(seconds)))),
        }
        with self.http.stream(
            self._path(), params=params, read_seconds=max(1.0, seconds) + 5
        ) as resp:
            for line in resp.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "DELETED":
                    raise TaskDeleted(self.namespace, name)
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        return True
                    raise ApiError.from_kubernetes(int(obj.get("code") or 500), obj)
                if kind in ("ADDED", "MODIFIED"):
                    yield task_view(obj)
        return False

    # --- schedules and queues: the objects themselves, as kubectl reaches them -----------

    def _schedules(self, name: str | None = None) -> str:
        base = f"{API}/namespaces/{urllib.parse.quote(self.namespace)}/asynctaskschedules"
        return f"{base}/{urllib.parse.quote(name)}" if name else base

    def _queues(self, name: str | None = None) -> str:
        return f"{API}/asyncqueues" + (f"/{urllib.parse.quote(name)}" if name else "")

    def _all(self, path: str) -> builtins.list[dict[str, Any]]:
        params = {"limit": "500"}
        objects: builtins.list[dict[str, Any]] = []
        while True:
            _, answer = self.http.call("GET", path, params=params)
            objects += answer.get("items") or []
            token = (answer.get("metadata") or {}).get("continue")
            if not token:
                return sorted(objects, key=lambda o: str((o.get("metadata") or {}).get("name")))
            params["continue"] = token

    def _merge(self, path: str, spec: dict[str, Any]) -> dict[str, Any]:
        _, obj = self.http.call(
            "PATCH", path, body={"spec": spec}, content_type="application/merge-patch+json"
        )
        return obj

    def schedules(self) -> builtins.list[ScheduleView]:
        return [schedule_view(obj) for obj in self._all(self._schedules())]

    def schedule(self, name: str) -> ScheduleView:
        return schedule_view(self.http.call("GET", self._schedules(name))[1])

    def create_schedule(self, manifest: dict[str, Any]) -> ScheduleView:
        body = {**manifest, "metadata": {**manifest["metadata"], "namespace": self.namespace}}
        return schedule_view(self.http.call("POST", self._schedules(), body=body)[1])

    def delete_schedule(self, name: str) -> None:
        self.http.call("DELETE", self._schedules(name), params={"propagationPolicy": "Background"})

    def suspend_schedule(self, name: str, suspend: bool) -> ScheduleView:
        return schedule_view(self._merge(self._schedules(name), {"suspend": suspend}))

    def trigger_schedule(self, name: str) -> TaskView:
        """The schedule read, then its manual task created, both with the caller's own
        rights (as through the gateway: get on the schedule, create on asynctasks)."""
        _, schedule = self.http.call("GET", self._schedules(name))
        return task_view(self.http.call("POST", self._path(), body=manual_task(schedule))[1])

    def queues(self) -> builtins.list[QueueView]:
        return [queue_view(obj) for obj in self._all(self._queues())]

    def queue(self, name: str) -> QueueView:
        return queue_view(self.http.call("GET", self._queues(name))[1])

    def pause_queue(self, name: str, paused: bool) -> QueueView:
        return queue_view(self._merge(self._queues(name), {"paused": paused}))

    def close(self) -> None:
        self.http.close()
