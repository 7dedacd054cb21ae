"""The operator's watch of AsyncTasks: which namespaces, and each object's events in order.

The operator lists and watches AsyncTasks itself (:mod:`apiserver.listwatch`) instead of through
kopf's ``@kopf.on.event``. kopf's per-event machinery (a worker per object, cause
detection, handler state, keyword arguments, a logger per object) was 43% of the
operator's CPU while it listed 30k tasks at start-up, and the watch was the operator's
only use of it (bench/README.md). Here an event costs a dict lookup and, for an object
not already being handled, one asyncio task.

Each object (by uid) gets a lane (:class:`lanes.Lanes`): its events are handled one at a
time, in order, and different objects' at once, so a task waiting for its lock (a status
write in flight) holds nobody else back. The handler reads the whole object, so of the
events that queued up behind a running one only the newest is handled, as kopf did in its
batch window.

After a full list (at start-up, or after the watch expired), a task the operator tracks
that the list no longer has was deleted while nobody watched: it is handled as DELETED.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from asynctask_operator.apiserver.apiclient import ApiClient
from asynctask_operator.apiserver.listwatch import Kind, ListWatch, OutageReport, Scope
from asynctask_operator.apiserver.resource import tasks_path
from asynctask_operator.lanes import Lanes
from asynctask_operator.scaling.policy import in_scope

log = logging.getLogger("asynctask.operator")

Event = tuple[Kind, dict[str, Any]]
Handler = Callable[[Kind, dict[str, Any]], Awaitable[None]]
#: What the operator tracks: (uid, namespace, name) of each task.
Known = Callable[[], Iterable[tuple[str, str, str]]]


def scopes(namespaces: Sequence[str]) -> tuple[list[Scope], Callable[[str], bool]]:
    """What to watch for ``--namespace`` values, and which namespaces are served.

    Names are watched one by one (a Role in each is enough). No names, or any pattern
    (kopf's, as the autoscaler reads them too: globs such as ``t-*``, comma-separated,
    ``!glob`` excluding; :func:`scaling.policy.in_scope`), watches all namespaces and keeps
    the matching ones: that needs the right to list and watch AsyncTasks cluster-wide.
    """
    if not namespaces:
        return [None], lambda namespace: True
    if any(c in pattern for pattern in namespaces for c in "*?[,!"):
        patterns = tuple(namespaces)
        return [None], lambda namespace: in_scope(namespace, patterns)
    return [*sorted(set(namespaces))], lambda namespace: True


def served(namespaces: Sequence[str]) -> Callable[[str], bool]:
    """Exactly the namespaces this operator serves (names, patterns, or all of them): what
    it may clean up in storage shared with operators of other namespaces."""
    _, serves = scopes(namespaces)
    if namespaces and not any(c in pattern for pattern in namespaces for c in "*?[,!"):
        names = frozenset(namespaces)
        return names.__contains__
    return serves


class TaskWatch:
    """A :class:`listwatch.WatchSink` handing AsyncTask events to ``handle``."""

    def __init__(
        self,
        api: ApiClient,
        namespaces: Sequence[str],
        handle: Handler,
        known: Known,
        *,
        watch_timeout: int = 300,
        outage: OutageReport | None = None,
    ) -> None:
        self._handle = handle
        self._known = known
        watched, self._serves = scopes(namespaces)
        self._unlisted = set(watched)
        #: Set once every scope was listed: the operator has seen every task there was.
        self.synced = asyncio.Event()
        self._lanes: Lanes[Event] = Lanes(
            self._handle_latest, on_failure="its next event or the next start handles it again"
        )
        self.listwatch = ListWatch(
            api, tasks_path, watched, self, watch_timeout=watch_timeout, outage=outage
        )

    async def run(self) -> None:
        await self.listwatch.run()

    def stop(self) -> None:
        self._lanes.cancel()

    async def join(self) -> None:
        """Wait until every event handed over so far is handled (tests)."""
        await self._lanes.join()

    # the sink --------------------------------------------------------------------------

    def event(self, kind: Kind, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace, uid = str(meta.get("namespace") or ""), str(meta.get("uid") or "")
        if not uid or not self._serves(namespace):
            return
        self._lanes.submit(uid, (kind, obj))

    def listed(self, scope: Scope, seen: set[str]) -> None:
        self._unlisted.discard(scope)
        if not self._unlisted:
            self.synced.set()
        for uid, namespace, name in list(self._known()):
            in_scope = (scope is None or namespace == scope) and self._serves(namespace)
            if in_scope and uid not in seen:
                log.info("%s/%s was deleted while unwatched", namespace, name)
                gone = {"metadata": {"uid": uid, "namespace": namespace, "name": name}}
                self._lanes.submit(uid, ("DELETED", gone))

    async def _handle_latest(self, uid: str, events: list[Event]) -> None:
        kind, obj = events[-1]
        await self._handle(kind, obj)
