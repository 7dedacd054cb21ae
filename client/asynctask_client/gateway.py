"""The HTTP gateway transport (``/v1/namespaces/{ns}/tasks``, ``…/schedules`` and
``/v1/queues``, docs/gateway.md).

Submit-and-wait uses ``Prefer: wait=N``, following uses the server-sent event stream
(``/events``) resumed with ``Last-Event-ID``: a task's status is a state, so the last
resourceVersion seen is all a reconnect needs.
"""

from __future__ import annotations

import builtins
import json
import ssl
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from asynctask_client.errors import ApiError, TaskDeleted
from asynctask_client.http import Http
from asynctask_client.transport import Details, Submission, schedule_body
from asynctask_worker.bulk import Action, BulkAnswer
from asynctask_worker.resource_views import QueueView, ScheduleView
from asynctask_worker.views import TaskView

#: The gateway answers a ``Prefer: wait`` or a ``/wait`` within this many seconds at most.
MAX_WAIT = 55
PAGE = 500


@dataclass
class SseEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


def sse_events(lines: Iterator[str]) -> Iterator[SseEvent]:
    """The events of a ``text/event-stream`` (WHATWG HTML), comments skipped."""
    current = SseEvent()
    for line in lines:
        if line == "":
            if current.data or current.id is not None:
                yield current
            current = SseEvent()
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            current.id = value
        elif name == "event":
            current.event = value
        elif name == "data":
            current.data = f"{current.data}\n{value}" if current.data else value


class GatewayTransport:
    """Calls to an asynctask-gateway with a bearer token."""

    kind = "gateway"

    def __init__(
        self, url: str, token: str | None, namespace: str, verify: bool | str = True
    ) -> None:
        self.namespace = namespace
        self.http = Http(url, token=lambda: token, verify=_verify(verify))

    def _path(self, name: str | None = None, action: str = "") -> str:
        base = f"/v1/namespaces/{urllib.parse.quote(self.namespace)}/tasks"
        return base + (f"/{urllib.parse.quote(name)}" if name else "") + action

    def create(
        self, submission: Submission, *, idempotency_key: str | None, wait: float | None
    ) -> TaskView:
        headers = {}
        if idempotency_key is not None:
            headers["Idempotency-Key"] = json.dumps(idempotency_key)
        if wait is not None and wait > 0:
            headers["Prefer"] = f"wait={int(min(wait, MAX_WAIT))}"
        seconds = 30 + (min(wait, MAX_WAIT) if wait else 0)
        _, answer = self.http.call(
            "POST", self._path(), body=submission.body(), headers=headers, seconds=seconds
        )
        return TaskView.model_validate(answer)

    def get(self, name: str, *, archived: bool = False) -> TaskView:
        params = {"archived": "true"} if archived else None
        return TaskView.model_validate(self.http.call("GET", self._path(name), params=params)[1])

    def list(
        self, *, queue: str | None, phase: str | None, label_selector: str | None
    ) -> list[TaskView]:
        params = {"limit": str(PAGE)}
        for key, value in (("queue", queue), ("phase", phase), ("labelSelector", label_selector)):
            if value:
                params[key] = value
        views: list[TaskView] = []
        while True:
            _, answer = self.http.call("GET", self._path(), params=params)
            views += [TaskView.model_validate(item) for item in answer.get("items") or []]
            if not answer.get("continue"):
                return views
            params["continue"] = str(answer["continue"])

    def cancel(self, name: str) -> TaskView:
        _, answer = self.http.call("POST", self._path(name, "/cancel"))
        return TaskView.model_validate(answer)

    def history(self, **filters: str | None) -> builtins.list[TaskView]:
        params = {"limit": str(PAGE), **{k: v for k, v in filters.items() if v}}
        path = f"/v1/namespaces/{urllib.parse.quote(self.namespace)}/history"
        views: builtins.list[TaskView] = []
        while True:
            _, answer = self.http.call("GET", path, params=params)
            views += [TaskView.model_validate(item) for item in answer.get("items") or []]
            if not answer.get("continue"):
                return views
            params["continue"] = str(answer["continue"])

    def resubmit(self, name: str) -> TaskView:
        _, answer = self.http.call("POST", self._path(name, ":resubmit"))
        return TaskView.model_validate(answer)

    def delete(self, name: str) -> None:
        self.http.call("DELETE", self._path(name))

    def describe(self, name: str) -> Details:
        return Details(view=self.get(name))

    def bulk(self, action: Action, label_selector: str) -> BulkAnswer:
        """``POST …/tasks:cancel`` (or ``:delete``), following ``continue`` to the end."""
        params = {"labelSelector": label_selector, "limit": str(PAGE)}
        answer: BulkAnswer | None = None
        while True:
            _, body = self.http.call("POST", self._path(action=f":{action}"), params=params)
            page = BulkAnswer.model_validate(body)
            answer = page if answer is None else answer.then(page)
            if not page.continue_:
                return answer
            params["continue"] = page.continue_

    def changes(self, name: str, after: str, seconds: float) -> Iterator[TaskView]:
        headers = {"Accept": "text/event-stream", "Last-Event-ID": after}
        # A read may wait through a quiet stream until the next keepalive (15 s by default).
        try:
            with self.http.stream(
                self._path(name, "/events"), headers=headers, read_seconds=max(1.0, seconds)
            ) as resp:
                if resp.status_code == 204:  # the task had ended at the state we saw last
                    return
                for event in sse_events(resp.iter_lines()):
                    if event.event == "deleted":
                        raise TaskDeleted(self.namespace, name)
                    yield TaskView.model_validate_json(event.data)
        except ApiError as exc:
            if exc.status == 404:  # deleted between two connections of the stream
                raise TaskDeleted(self.namespace, name) from exc
            raise

    def _schedules(self, name: str | None = None, action: str = "") -> str:
        base = f"/v1/namespaces/{urllib.parse.quote(self.namespace)}/schedules"
        return base + (f"/{urllib.parse.quote(name)}" if name else "") + action

    def schedules(self) -> builtins.list[ScheduleView]:
        items = self.http.call("GET", self._schedules())[1].get("items") or []
        return [ScheduleView.model_validate(item) for item in items]

    def schedule(self, name: str) -> ScheduleView:
        return ScheduleView.model_validate(self.http.call("GET", self._schedules(name))[1])

    def create_schedule(self, manifest: dict[str, Any]) -> ScheduleView:
        _, answer = self.http.call("POST", self._schedules(), body=schedule_body(manifest))
        return ScheduleView.model_validate(answer)

    def delete_schedule(self, name: str) -> None:
        self.http.call("DELETE", self._schedules(name))

    def suspend_schedule(self, name: str, suspend: bool) -> ScheduleView:
        action = ":suspend" if suspend else ":resume"
        return ScheduleView.model_validate(self.http.call("POST", self._schedules(name, action))[1])

    def trigger_schedule(self, name: str) -> TaskView:
        return TaskView.model_validate(self.http.call("POST", self._schedules(name, ":trigger"))[1])

    def queues(self) -> builtins.list[QueueView]:
        items = self.http.call("GET", "/v1/queues")[1].get("items") or []
        return [QueueView.model_validate(item) for item in items]

    def queue(self, name: str) -> QueueView:
        return QueueView.model_validate(
            self.http.call("GET", f"/v1/queues/{urllib.parse.quote(name)}")[1]
        )

    def pause_queue(self, name: str, paused: bool) -> QueueView:
        action = ":pause" if paused else ":resume"
        path = f"/v1/queues/{urllib.parse.quote(name)}{action}"
        return QueueView.model_validate(self.http.call("POST", path)[1])

    def close(self) -> None:
        self.http.close()


def _verify(verify: bool | str) -> bool | ssl.SSLContext:
    """``verify`` as given, or a CA bundle's path."""
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return verify
