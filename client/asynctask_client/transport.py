"""What both transports do, and the pure pieces they share (no I/O here).

:class:`Transport` is the seam between :class:`~asynctask_client.Client` and a server: the
Kubernetes API (``kube.py``) or the HTTP gateway (``gateway.py``). Each call takes and
returns :class:`~asynctask_worker.views.TaskView`, the view the gateway serves and
``task_view`` builds from an AsyncTask object, so a task reads the same through either.
"""

from __future__ import annotations

import base64
import builtins
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from asynctask_worker.bulk import Action, BulkAnswer
from asynctask_worker.resource_views import SCHEDULE_KIND, QueueView, ScheduleView
from asynctask_worker.views import TaskView

GROUP = "asynctask.dev"
API = f"/apis/{GROUP}/v1alpha1"
REQUEST_HASH = f"{GROUP}/request-hash"


@dataclass(frozen=True)
class Submission:
    """One task to create: its spec (the CRD's camelCase names), and optionally its name
    and labels."""

    spec: dict[str, Any]
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The gateway's POST body: the spec's fields, name and labels beside them."""
        body = dict(self.spec)
        if self.name:
            body["name"] = self.name
        if self.labels:
            body["labels"] = dict(self.labels)
        return body


def spec_of(
    queue: str,
    request: Any,
    *,
    timeout: int | None = None,
    queue_timeout: int | None = None,
    retries: int | None = None,
    retry_backoff: int | None = None,
    ttl: int | None = None,
    webhook: str | Mapping[str, Any] | None = None,
    not_before: str | None = None,
    priority: int | None = None,
) -> dict[str, Any]:
    """The AsyncTask spec for these arguments; unset ones are left to the CRD's defaults.
    ``webhook`` is a URL or the whole ``spec.webhook`` (``{"url", "secretRef"}``);
    ``not_before`` an RFC 3339 time (``spec.notBefore``)."""
    spec: dict[str, Any] = {"queue": queue, "request": request}
    optional = {
        "timeoutSeconds": timeout,
        "queueTimeoutSeconds": queue_timeout,
        "retries": retries,
        "retryBackoffSeconds": retry_backoff,
        "ttlSecondsAfterFinished": ttl,
        "notBefore": not_before,
        "priority": priority,
    }
    spec.update({k: v for k, v in optional.items() if v is not None})
    if webhook is not None:
        spec["webhook"] = {"url": webhook} if isinstance(webhook, str) else dict(webhook)
    return spec


def request_hash(body: Any) -> str:
    """A digest of what was asked, independent of key order and whitespace (as the
    gateway computes it, so both record the same annotation)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent_name(namespace: str, key: str) -> str:
    """The task name an idempotency key stands for when the client creates the object
    itself: the same (namespace, key) always names the same task."""
    digest = hashlib.sha256("\0".join(("client", namespace, key)).encode()).digest()
    return "k-" + base64.b32encode(digest).decode().rstrip("=").lower()[:24]


def schedule_body(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The gateway's POST body for an AsyncTaskSchedule manifest (as ``kubectl apply``
    reads it): the spec's fields, with the name and labels beside them. Annotations have
    no place in it (the gateway records who created the schedule)."""
    meta = manifest.get("metadata") or {}
    body: dict[str, Any] = {"name": meta.get("name"), **dict(manifest.get("spec") or {})}
    if meta.get("labels"):
        body["labels"] = dict(meta["labels"])
    return body


def check_schedule(manifest: Any, namespace: str) -> dict[str, Any]:
    """``manifest`` if it is an AsyncTaskSchedule with a name, of no other namespace than
    the client's; ValueError says what is wrong."""
    if not isinstance(manifest, Mapping) or manifest.get("kind") != SCHEDULE_KIND:
        raise ValueError(f"expected a manifest of kind {SCHEDULE_KIND}")
    meta = manifest.get("metadata") or {}
    if not isinstance(meta, Mapping) or not meta.get("name"):
        raise ValueError("the schedule's metadata.name is missing")
    if meta.get("namespace") not in (None, namespace):
        raise ValueError(
            f"the schedule's namespace {meta['namespace']!r} is not the client's ({namespace!r})"
        )
    return dict(manifest)


@dataclass(frozen=True)
class Details:
    """What ``describe`` shows. ``status`` (with ``conditions`` and ``webhook``), ``spec``
    and ``events`` come from the Kubernetes API; through the gateway, which serves views
    only, they are ``None``."""

    view: TaskView
    spec: dict[str, Any] | None = None
    status: dict[str, Any] | None = None
    events: list[dict[str, Any]] | None = None


class Transport(Protocol):
    """The calls a client makes; every one raises :class:`~asynctask_client.ApiError` on a
    refusal and :class:`~asynctask_client.ConnectionFailed` when the server is out of reach."""

    namespace: str
    kind: str  # "kubernetes" or "gateway", for messages

    def create(
        self, submission: Submission, *, idempotency_key: str | None, wait: float | None
    ) -> TaskView: ...

    def get(self, name: str, *, archived: bool = False) -> TaskView:
        """The task by name (or, through the gateway, by uid); live, else its latest
        archived run; ``archived``: the history archive's record only."""
        ...

    def list(
        self, *, queue: str | None, phase: str | None, label_selector: str | None
    ) -> list[TaskView]: ...

    def cancel(self, name: str) -> TaskView: ...

    def delete(self, name: str) -> None: ...

    def describe(self, name: str) -> Details: ...

    def bulk(self, action: Action, label_selector: str) -> BulkAnswer:
        """Cancel or delete every task whose labels match (all of them, page after page),
        each with the caller's own rights; the counts, and each task by name."""
        ...

    def history(self, **filters: str | None) -> builtins.list[TaskView]:
        """The namespace's archived tasks, newest first (the gateway's history archive);
        ``filters``: queue, phase, labelSelector, creator, since, until."""
        ...

    def resubmit(self, name: str) -> TaskView:
        """A new task from this one's spec (live, or its latest archived run)."""
        ...

    def changes(self, name: str, after: str, seconds: float) -> Iterator[TaskView]:
        """The task's states after resourceVersion ``after`` (the current one at once if it
        differs), over one connection that lasts at most about ``seconds``; raises
        :class:`~asynctask_client.TaskDeleted` when the task is deleted."""
        ...

    # Schedules (AsyncTaskSchedule, in the namespace) and queues (AsyncQueue, cluster-wide).

    def schedules(self) -> builtins.list[ScheduleView]: ...

    def schedule(self, name: str) -> ScheduleView: ...

    def create_schedule(self, manifest: dict[str, Any]) -> ScheduleView: ...

    def delete_schedule(self, name: str) -> None: ...

    def suspend_schedule(self, name: str, suspend: bool) -> ScheduleView:
        """Set ``spec.suspend`` (a merge patch)."""
        ...

    def trigger_schedule(self, name: str) -> TaskView:
        """Create a task from the schedule's template now (``<schedule>-manual-...``)."""
        ...

    def queues(self) -> builtins.list[QueueView]: ...

    def queue(self, name: str) -> QueueView: ...

    def pause_queue(self, name: str, paused: bool) -> QueueView:
        """Set ``spec.paused`` (a merge patch)."""
        ...

    def close(self) -> None: ...
