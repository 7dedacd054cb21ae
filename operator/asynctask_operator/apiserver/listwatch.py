"""List, then watch: one resource kept in view through disconnects, expiries and outages.

What client-go's reflector does, for raw JSON: each scope (a namespace, or ``None`` for all
of them) is listed in pages, then watched from the list's resourceVersion. A watch that
ends (the apiserver closes it after ``timeoutSeconds``) or breaks resumes from the last
resourceVersion seen (bookmarks keep that fresh on quiet scopes); one that is too old for
the apiserver (410 Gone) lists again. Other failures (an outage, 5xx, 429) retry with a
backoff that doubles up to :data:`MAX_BACKOFF_SECONDS`. Each failure is logged, unless an
:class:`OutageReport` is given: an outage is then told to it (the operator tells an outage
once for all its calls), and what answers again too.

The loop only reads. What to do with the objects is the :class:`WatchSink`'s business: its
callbacks are plain functions, called in the order the apiserver sent the objects, and
must not block (a sink that needs to wait starts its own task). The operator's task watch
(:mod:`task_watch`) and the gateway's cache are the two sinks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Protocol

from asynctask_operator.apiserver.apiclient import ApiClient, ApiError, unavailable
from asynctask_operator.errors import Unavailable

log = logging.getLogger("asynctask.listwatch")

#: Objects per list page: bounds what a list holds in memory at once.
PAGE = 500
#: The longest pause between two attempts while the apiserver cannot be reached.
MAX_BACKOFF_SECONDS = 16.0

#: What happened to an object: seen in a list, or a watch event's type.
Kind = Literal["LISTED", "ADDED", "MODIFIED", "DELETED"]
Scope = str | None  # a namespace, or None for all namespaces


class WatchSink(Protocol):
    def event(self, kind: Kind, obj: dict[str, Any]) -> None:
        """An object as listed, added, modified or deleted."""

    def listed(self, scope: Scope, uids: set[str]) -> None:
        """The list of ``scope`` is complete, and these are the uids it had: an object of
        the scope not among them is gone."""


class OutageReport(Protocol):
    """Where an apiserver outage is told (:class:`asynctask_operator.outage.Outage`)."""

    def failed(self, exc: Unavailable) -> None: ...

    def answered(self) -> None: ...


class ListWatch:
    def __init__(
        self,
        api: ApiClient,
        path: Callable[[Scope], str],
        scopes: Sequence[Scope],
        sink: WatchSink,
        *,
        watch_timeout: int = 300,
        on_restart: Callable[[str], None] = lambda reason: None,
        outage: OutageReport | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> None:
        self.api = api
        self.selector = dict(selector or {})  # e.g. {"labelSelector": ...}, lists and watches
        self.path = path
        self.scopes = list(scopes)
        self.sink = sink
        self.watch_timeout = watch_timeout
        self.on_restart = on_restart  # "gone" (relist) or "error" (retry), e.g. a metric
        self.outage = outage

    async def run(self) -> None:
        """Keep every scope in view until cancelled."""
        await asyncio.gather(*(self._run_scope(scope) for scope in self.scopes))

    async def _run_scope(self, scope: Scope) -> None:
        version: str | None = None
        backoff = 1.0
        while True:
            try:
                if version is None:
                    version = await self._relist(scope)
                version = await self._watch(scope, version)
                backoff = 1.0
            except asyncio.CancelledError:
                raise
            except ApiError as exc:
                if exc.status == 410:
                    log.info("watch of %s expired (410 Gone): listing again", _name(scope))
                    self.on_restart("gone")
                    version = None
                    continue
                backoff = await self._pause(scope, exc, backoff)
            except Exception as exc:  # noqa: BLE001 - a broken connection: resume after a pause
                backoff = await self._pause(scope, exc, backoff)

    async def _pause(self, scope: Scope, exc: Exception, backoff: float) -> float:
        down = unavailable(exc) if self.outage is not None else None
        if self.outage is not None and down is not None:
            self.outage.failed(down)
        else:
            log.warning("watch of %s failed (%r): again in %.0fs", _name(scope), exc, backoff)
        self.on_restart("error")
        await asyncio.sleep(backoff)
        return min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _relist(self, scope: Scope) -> str:
        """A full list of the scope, in pages; returns its resourceVersion."""
        params: dict[str, str] = {**self.selector, "limit": str(PAGE)}
        uids: set[str] = set()
        while True:
            page = await self.api.request("GET", self.path(scope), params=params, seconds=120)
            self._answered()
            for obj in page.get("items") or []:
                uids.add(str((obj.get("metadata") or {}).get("uid") or ""))
                self.sink.event("LISTED", obj)
            meta = page.get("metadata") or {}
            if not meta.get("continue"):
                break
            params["continue"] = str(meta["continue"])
        self.sink.listed(scope, uids)
        log.info("listed %d objects in %s", len(uids), _name(scope))
        return str(meta.get("resourceVersion") or "")

    async def _watch(self, scope: Scope, version: str) -> str:
        """One watch request; returns the resourceVersion to resume from."""
        params = {
            **self.selector,
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(self.watch_timeout),
        }
        async for event in self.api.watch(
            self.path(scope), params, read_timeout=self.watch_timeout + 30, on_open=self._answered
        ):
            kind, obj = event.get("type"), event.get("object") or {}
            if kind == "ERROR":
                raise ApiError(int(obj.get("code") or 500), obj)
            version = str((obj.get("metadata") or {}).get("resourceVersion") or version)
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                self.sink.event(kind, obj)
        return version

    def _answered(self) -> None:
        if self.outage is not None:
            self.outage.answered()


def _name(scope: Scope) -> str:
    return scope or "all namespaces"
