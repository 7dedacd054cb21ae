"""The Python client: :class:`Client` submits, finds and cancels tasks; :class:`Task` follows
one to its end. The same calls work through the Kubernetes API
(:meth:`Client.from_kubeconfig`) and through the HTTP gateway (``Client(url, token=...)``).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar, overload

import httpx
from pydantic import BaseModel

from asynctask_client import kubeconfig
from asynctask_client.errors import WaitTimeout, raise_for_outcome
from asynctask_client.gateway import GatewayTransport
from asynctask_client.kube import KubeTransport
from asynctask_client.transport import Details, Submission, Transport, check_schedule, spec_of
from asynctask_client.when import rfc3339
from asynctask_worker.bulk import BulkAnswer, require_selector
from asynctask_worker.resource_views import QueueView, ScheduleView
from asynctask_worker.views import TaskView

M = TypeVar("M", bound=BaseModel)
#: The longest one streaming connection is kept before it is renewed.
CONNECTION_SECONDS = 60.0
#: The pause before a dropped stream is opened again.
RECONNECT_SECONDS = 0.5
#: Errors after which a stream is opened again (the server or a proxy dropped it).
_DROPPED = (httpx.ReadError, httpx.RemoteProtocolError)


class Client:
    """Tasks in one namespace. ``Client(gateway_url, token=...)`` talks to an
    asynctask-gateway; :meth:`from_kubeconfig` to the Kubernetes API directly."""

    def __init__(
        self,
        gateway_url: str | None = None,
        *,
        token: str | None = None,
        namespace: str = "default",
        verify: bool | str = True,
        transport: Transport | None = None,
    ) -> None:
        if transport is None:
            if not gateway_url:
                raise ValueError("give the gateway's URL, or use Client.from_kubeconfig()")
            transport = GatewayTransport(gateway_url, token, namespace, verify)
        self.transport = transport

    @classmethod
    def from_kubeconfig(
        cls, context: str | None = None, namespace: str | None = None, path: str | None = None
    ) -> Client:
        """The Kubernetes API as kubectl would reach it (``KUBECONFIG``, ``~/.kube/config``,
        the context's namespace), or the pod's ServiceAccount when there is no kubeconfig."""
        return cls(transport=KubeTransport(kubeconfig.load(path, context, namespace)))

    @property
    def namespace(self) -> str:
        return self.transport.namespace

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.transport.close()

    def submit(
        self,
        queue: str,
        request: Any = None,
        *,
        timeout: int | None = None,
        queue_timeout: int | None = None,
        retries: int | None = None,
        retry_backoff: int | None = None,
        ttl: int | None = None,
        webhook: str | Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        name: str | None = None,
        labels: Mapping[str, str] | None = None,
        wait: float | None = None,
        not_before: datetime | str | None = None,
        priority: int | None = None,
    ) -> Task:
        """Create a task for ``queue``'s workers. ``timeout``, ``queue_timeout``, ``ttl`` and
        ``retry_backoff`` are seconds (the spec's ``timeoutSeconds``...). With
        ``idempotency_key``, a retry returns the task the first call created. With
        ``wait``, the call returns once the task is done or after ``wait`` seconds,
        whichever is first (it never raises for the task's outcome: see :meth:`Task.wait`).
        With ``not_before`` (an aware datetime or RFC 3339 text) the task is held, Pending,
        until then (``spec.notBefore``). ``priority`` (-100..100, higher first) orders the
        task among those held on a queue with an AsyncQueue (``spec.priority``)."""
        spec = spec_of(
            queue,
            request,
            timeout=timeout,
            queue_timeout=queue_timeout,
            retries=retries,
            retry_backoff=retry_backoff,
            ttl=ttl,
            webhook=webhook,
            not_before=rfc3339(not_before) if isinstance(not_before, datetime) else not_before,
            priority=priority,
        )
        started = time.monotonic()
        view = self.transport.create(
            Submission(spec, name, dict(labels or {})), idempotency_key=idempotency_key, wait=wait
        )
        task = Task(self, view)
        if wait is not None and not view.done:
            remaining = wait - (time.monotonic() - started)
            if remaining > 0:
                task.view = task.latest(remaining)
        return task

    def get(self, name: str, *, archived: bool = False) -> Task:
        """The task by name (through the gateway also by uid). Through the gateway, a task
        that is no longer live is its latest archived run (``task.view.archived``);
        ``archived=True`` reads the history archive's record only, even while it lives."""
        return Task(self, self.transport.get(name, archived=archived))

    def list(
        self,
        *,
        queue: str | None = None,
        phase: str | None = None,
        label_selector: str | None = None,
    ) -> list[Task]:
        """The namespace's tasks, by name, optionally only of a queue, a phase or labels."""
        views = self.transport.list(queue=queue, phase=phase, label_selector=label_selector)
        return [Task(self, view) for view in views]

    def describe(self, name: str) -> Details:
        return self.transport.describe(name)

    def history(
        self,
        *,
        queue: str | None = None,
        phase: str | None = None,
        label_selector: str | None = None,
        creator: str | None = None,
        since: str | None = None,
        until: str | None = None,
    ) -> builtins.list[Task]:
        """Archived tasks of the namespace, newest first (through the gateway: its history
        archive, docs/history.md); ``since``/``until``: RFC 3339 times of the finish."""
        views = self.transport.history(
            queue=queue,
            phase=phase,
            labelSelector=label_selector,
            creator=creator,
            since=since,
            until=until,
        )
        return [Task(self, view) for view in views]

    def resubmit(self, name: str) -> Task:
        """A new task from this one's spec and labels (live, or its latest archived run),
        labelled ``asynctask.dev/resubmitted-from`` with the original's uid."""
        return Task(self, self.transport.resubmit(name))

    def cancel_many(self, label_selector: str) -> BulkAnswer:
        """Cancel every task whose labels match ``label_selector`` (required: never every
        task). Tasks already ended, or already asked to cancel, are counted as skipped, so
        calling again is harmless; a task the caller may not patch is counted as failed,
        with its reason. The answer names each matched task."""
        return self.transport.bulk("cancel", require_selector(label_selector))

    def delete_many(self, label_selector: str) -> BulkAnswer:
        """Delete every task whose labels match ``label_selector`` (required); tasks already
        gone are counted as skipped, refusals as failed, with their reason."""
        return self.transport.bulk("delete", require_selector(label_selector))

    # --- schedules (AsyncTaskSchedule, this namespace) ------------------------------------

    def list_schedules(self) -> builtins.list[ScheduleView]:
        """The namespace's schedules, by name."""
        return self.transport.schedules()

    def get_schedule(self, name: str) -> ScheduleView:
        return self.transport.schedule(name)

    def create_schedule(self, manifest: Mapping[str, Any]) -> ScheduleView:
        """Create an AsyncTaskSchedule from its manifest (``kind: AsyncTaskSchedule``,
        ``metadata.name``, ``spec``: a cron ``schedule`` or ``intervalSeconds`` and the task
        ``template``), in this client's namespace."""
        return self.transport.create_schedule(check_schedule(manifest, self.namespace))

    def delete_schedule(self, name: str) -> None:
        """Delete the schedule; its tasks are garbage-collected with it."""
        self.transport.delete_schedule(name)

    def suspend_schedule(self, name: str) -> ScheduleView:
        """No slot fires until :meth:`resume_schedule` (``spec.suspend: true``)."""
        return self.transport.suspend_schedule(name, True)

    def resume_schedule(self, name: str) -> ScheduleView:
        return self.transport.suspend_schedule(name, False)

    def trigger_schedule(self, name: str) -> Task:
        """Run the schedule's template now: a task ``<schedule>-manual-...``, labelled
        ``asynctask.dev/schedule`` and owned by the schedule."""
        return Task(self, self.transport.trigger_schedule(name))

    def schedule_tasks(self, name: str) -> builtins.list[Task]:
        """The tasks of the schedule ``name`` (by its label), slots' and manual ones."""
        return self.list(label_selector=f"asynctask.dev/schedule={name}")

    # --- queues (AsyncQueue, cluster-wide) ------------------------------------------------

    def list_queues(self) -> builtins.list[QueueView]:
        """The cluster's queues with a policy (AsyncQueue), by name."""
        return self.transport.queues()

    def get_queue(self, name: str) -> QueueView:
        return self.transport.queue(name)

    def pause_queue(self, name: str) -> QueueView:
        """Hold the queue's tasks (``spec.paused: true``); running ones finish."""
        return self.transport.pause_queue(name, True)

    def resume_queue(self, name: str) -> QueueView:
        return self.transport.pause_queue(name, False)


class Task:
    """One task; ``view`` is its state when last read (``refresh()`` reads it again)."""

    def __init__(self, client: Client, view: TaskView) -> None:
        self.client, self.view = client, view

    def __repr__(self) -> str:
        return f"<Task {self.view.namespace}/{self.name} {self.view.phase.value}>"

    @property
    def name(self) -> str:
        return self.view.name

    @property
    def done(self) -> bool:
        return self.view.done

    def refresh(self) -> TaskView:
        self.view = self.client.transport.get(self.name)
        return self.view

    def cancel(self) -> TaskView:
        """Ask for the task to stop (``spec.cancel``); the record is kept. Its phase turns
        Cancelled once the worker (or the operator) confirms: wait for it."""
        self.view = self.client.transport.cancel(self.name)
        return self.view

    def delete(self) -> None:
        self.client.transport.delete(self.name)

    def updates(self, timeout: float | None = None) -> Iterator[TaskView]:
        """The task's states as they change, the current one first, ending with the terminal
        one. Raises :class:`WaitTimeout` after ``timeout`` seconds, :class:`TaskDeleted`
        if the task is deleted. Dropped connections are resumed where they stopped."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.refresh()
        yield self.view
        while not self.view.done:
            left = CONNECTION_SECONDS if deadline is None else deadline - time.monotonic()
            if left <= 0:
                raise WaitTimeout(self.view, timeout or 0)
            try:
                for view in self.client.transport.changes(
                    self.name, self.view.resource_version, min(left, CONNECTION_SECONDS)
                ):
                    if view.resource_version == self.view.resource_version:
                        continue
                    self.view = view
                    yield view
                    if view.done:
                        return
            except httpx.ReadTimeout:
                continue  # quiet for the whole read: the deadline is checked, then resumed
            except _DROPPED:
                time.sleep(RECONNECT_SECONDS)  # a server that drops at once is not hammered

    async def aupdates(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> AsyncIterator[TaskView]:
        """:meth:`updates` for asyncio code: each blocking read runs in a worker thread, so
        the event loop is never held up (one thread per followed task). ``timeout`` is
        handed to that thread's stream, which ``asyncio.timeout`` could not interrupt."""
        states = self.updates(timeout)
        while True:
            view = await asyncio.to_thread(next, states, None)
            if view is None:
                return
            yield view

    def latest(self, seconds: float) -> TaskView:
        """The state once the task is done, or the latest one after ``seconds``."""
        try:
            for _ in self.updates(seconds):
                pass
        except WaitTimeout as late:
            return late.view
        return self.view

    @overload
    def wait(self, timeout: float | None = None, *, model: None = None) -> Any: ...

    @overload
    def wait(self, timeout: float | None = None, *, model: type[M]) -> M: ...

    def wait(self, timeout: float | None = None, *, model: type[M] | None = None) -> Any:
        """The result once the task succeeded (validated into ``model`` when given); raises
        :class:`TaskFailed`, :class:`TaskError`, :class:`TaskCancelled` or
        :class:`TaskTimedOut` for the other outcomes and :class:`WaitTimeout` if it is not
        done after ``timeout`` seconds."""
        for _ in self.updates(timeout):
            pass
        return self.result(model=model)

    async def wait_async(
        self,
        timeout: float | None = None,  # noqa: ASYNC109
        *,
        model: type[M] | None = None,
    ) -> Any:
        async for _ in self.aupdates(timeout):
            pass
        return self.result(model=model)

    def result(self, *, model: type[M] | None = None) -> Any:
        """The result of a task known to be done (no call is made); raises for an outcome
        other than Succeeded, :class:`WaitTimeout` (after 0 s) if it is not done yet."""
        if not self.view.done:
            raise WaitTimeout(self.view, 0)
        raise_for_outcome(self.view)
        if model is not None:
            return model.model_validate(self.view.result)
        return self.view.result
