"""What every handler shares: the process's parts (:class:`Gateway`), the authorized call
(:class:`Call`), the per-caller limits, and the few answer helpers all routes use."""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import web

from asynctask_gateway.auth import Authenticator, User
from asynctask_gateway.cache import Entry, TaskCache, project
from asynctask_gateway.feed import NamespaceFeed
from asynctask_gateway.kube import ApiError, Kube, tasks_path
from asynctask_gateway.metrics import Metrics
from asynctask_gateway.problems import Problem, from_api_error
from asynctask_gateway.settings import GatewaySettings
from asynctask_worker.views import TaskView

if TYPE_CHECKING:
    from asynctask_gateway.archive import ArchiveReader
    from asynctask_gateway.payload_store import PayloadStore

#: A route's handler.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
#: Seconds a client should wait before polling a task that is not done yet again.
POLL_AFTER = "1"
#: Seconds a caller over its limit of streams or waits should wait before trying again.
LIMITED_RETRY_AFTER = "5"


class Limits:
    """Open streams and waits per caller: one caller cannot take every connection."""

    def __init__(self, metrics: Metrics, max_streams: int, max_waits: int) -> None:
        self.metrics = metrics
        self.maximum = {"stream": max_streams, "wait": max_waits}
        self.open: Counter[tuple[str, str]] = Counter()

    @contextlib.contextmanager
    def hold(self, kind: str, user: User) -> Iterator[None]:
        key = (kind, user.name)
        if self.open[key] >= self.maximum[kind]:
            self.metrics.limited.labels(kind=kind).inc()
            raise Problem(
                429,
                "TooManyRequests",
                f"{user.name} has {self.open[key]} open {kind}s, the most allowed",
                headers={"Retry-After": LIMITED_RETRY_AFTER},
            )
        gauge = self.metrics.open_streams if kind == "stream" else self.metrics.open_waits
        self.open[key] += 1
        gauge.inc()
        try:
            yield
        finally:
            self.open[key] -= 1
            if self.open[key] <= 0:
                del self.open[key]
            gauge.dec()


@dataclass
class Gateway:
    settings: GatewaySettings
    kube: Kube
    cache: TaskCache
    auth: Authenticator
    metrics: Metrics
    #: The history archive, read (``ASYNCTASK_GATEWAY_ARCHIVE_URL``), or None.
    archive: ArchiveReader | None = None
    #: Object storage of large payloads (``ASYNCTASK_S3_ENDPOINT``), or None: offload off.
    payloads: PayloadStore | None = None
    limits: Limits = field(init=False)
    feed: NamespaceFeed = field(init=False)

    def __post_init__(self) -> None:
        self.limits = Limits(
            self.metrics, self.settings.max_streams_per_user, self.settings.max_waits_per_user
        )
        self.feed = NamespaceFeed()
        self.cache.listeners.append(self.feed.changed)

    async def entry(self, namespace: str, name: str) -> Entry:
        """The task from the cache; a GET when the cache has not seen it yet (created a
        moment ago through another replica), 404 when it does not exist."""
        entry = self.cache.get(namespace, name)
        if entry is not None:
            return entry
        try:
            return project(await self.kube.request("GET", tasks_path(namespace, name)))
        except ApiError as exc:
            raise from_api_error(exc) from exc


@dataclass(frozen=True)
class Call:
    """An authenticated, authorized call on a namespace (and a task, when named)."""

    user: User
    namespace: str
    name: str = ""


GATEWAY = web.AppKey("gateway", Gateway)
CALL = "asynctask.call"


def location(view: TaskView) -> str:
    return f"/v1/namespaces/{view.namespace}/tasks/{view.name}"


def etag(view: TaskView) -> str:
    return f'"{view.resource_version}"'


def view_headers(view: TaskView) -> dict[str, str]:
    headers = {"ETag": etag(view), "Cache-Control": "no-cache"}
    if not view.done:
        headers["Retry-After"] = POLL_AFTER
    return headers


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        content_type="application/json",
        headers=dict(headers or {}),
    )


def view_response(
    view: TaskView, status: int = 200, headers: Mapping[str, str] | None = None
) -> web.Response:
    return json_response(view.to_json(), status, {**view_headers(view), **(headers or {})})
