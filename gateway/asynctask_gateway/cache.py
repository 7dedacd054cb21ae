"""One shared list+watch cache of AsyncTasks per gateway process.

Every read of the API (GET, list, wait, events, the namespace stream) is served from here,
never from a watch or a GET per client (but a task page's ``/detail``, which needs the
request the cache drops). The list+watch loop is the operator's
(:mod:`asynctask_operator.apiserver.listwatch`): the watch resumes from the last resourceVersion it
saw (bookmarks keep that fresh on quiet namespaces), and lists again when the apiserver
answers 410 Gone.

Only a slim projection of each object is kept: the task view plus the queue and labels
the list filters on (about a quarter of a whole object; the spec's request is dropped).

Waiters and streams are woken by the cache itself: each key has at most one
:class:`asyncio.Event`, set and dropped when the entry changes. A waiter then reads the
*latest* entry, so a slow client skips states it had no time for instead of queueing them,
and never holds anyone else back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asynctask_gateway.kube import Kube, tasks_path
from asynctask_gateway.metrics import Metrics
from asynctask_operator.apiserver.listwatch import Kind, ListWatch
from asynctask_worker.views import TaskView, task_view

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name)


@dataclass(frozen=True)
class Entry:
    """The slim projection of one AsyncTask."""

    view: TaskView
    queue: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    cancel: bool = False

    @property
    def key(self) -> Key:
        return (self.view.namespace, self.view.name)


#: A cache listener: (key, the entry before, the entry after), ``None`` for absent.
Listener = Callable[[Key, "Entry | None", "Entry | None"], None]


def project(obj: Mapping[str, Any]) -> Entry:
    spec: Mapping[str, Any] = obj.get("spec") or {}
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    return Entry(
        view=task_view(obj),
        queue=str(spec.get("queue") or ""),
        labels=dict(meta.get("labels") or {}),
        cancel=bool(spec.get("cancel")),
    )


class TaskCache:
    """The entries of the watched scopes (namespaces, or ``None`` for all of them)."""

    def __init__(
        self, kube: Kube, namespaces: Iterable[str], metrics: Metrics, watch_timeout: int = 300
    ) -> None:
        self.kube, self.metrics, self.watch_timeout = kube, metrics, watch_timeout
        self.scopes: list[str | None] = list(namespaces) or [None]
        self._entries: dict[Key, Entry] = {}
        # The same entries by namespace: a list reads one namespace, never all of them.
        self._namespaces: dict[str, dict[str, Entry]] = {}
        self._signals: dict[Key, asyncio.Event] = {}
        self._synced: set[str | None] = set()
        #: Called with (key, old entry, new entry) on every change (None: absent), e.g. by
        #: the namespace feed (feed.py); they must not block.
        self.listeners: list[Listener] = []

    # --- reads ------------------------------------------------------------------------
    @property
    def synced(self) -> bool:
        return len(self._synced) == len(self.scopes)

    def serves(self, namespace: str) -> bool:
        return self.scopes == [None] or namespace in self.scopes

    def get(self, namespace: str, name: str) -> Entry | None:
        return self._entries.get((namespace, name))

    def in_namespace(self, namespace: str) -> list[Entry]:
        """The namespace's entries, sorted by name (the order pagination walks)."""
        entries = self._namespaces.get(namespace, {})
        return [entries[name] for name in sorted(entries)]

    def __len__(self) -> int:
        return len(self._entries)

    async def change(
        self, namespace: str, name: str, seen: str | None, within: float
    ) -> Entry | None:
        """The entry once its state differs from ``seen`` (its resourceVersion, or ``None``
        for "not in the cache"), or after ``within`` seconds as it is then; ``None`` when
        the cache does not hold the task (deleted, or not seen by the watch yet)."""
        key = (namespace, name)
        entry = self._entries.get(key)
        if (entry.view.resource_version if entry else None) != seen:
            return entry
        signal = self._signals.setdefault(key, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(signal.wait(), within)
        return self._entries.get(key)

    # --- writes -----------------------------------------------------------------------
    def seed(self, obj: Mapping[str, Any]) -> Entry:
        """An object the gateway itself just created: known before the watch reports it
        (a ``Prefer: wait`` needs it at once). A newer entry from the watch is kept."""
        entry = project(obj)
        current = self._entries.get(entry.key)
        if current is None:
            self._store(entry)
            return entry
        return current

    def _store(self, entry: Entry) -> None:
        old = self._entries.get(entry.key)
        self._entries[entry.key] = entry
        self._namespaces.setdefault(entry.key[0], {})[entry.key[1]] = entry
        self._wake(entry.key)
        for listener in self.listeners:
            listener(entry.key, old, entry)

    def _drop(self, key: Key) -> None:
        if (old := self._entries.pop(key, None)) is not None:
            names = self._namespaces.get(key[0], {})
            names.pop(key[1], None)
            if not names:
                self._namespaces.pop(key[0], None)
            self._wake(key)
            for listener in self.listeners:
                listener(key, old, None)

    def _wake(self, key: Key) -> None:
        signal = self._signals.pop(key, None)
        if signal is not None:
            signal.set()
        self.metrics.cache_tasks.set(len(self._entries))

    # --- list+watch (asynctask_operator.apiserver.listwatch calls these) ---------------
    async def run(self) -> None:
        """Watch every scope until cancelled."""
        await ListWatch(
            self.kube,
            tasks_path,
            self.scopes,
            self,
            watch_timeout=self.watch_timeout,
            on_restart=lambda reason: self.metrics.watch_restarts.labels(reason=reason).inc(),
        ).run()

    def event(self, kind: Kind, obj: dict[str, Any]) -> None:
        entry = project(obj)
        if kind == "DELETED":
            self._drop(entry.key)
            return
        if self._entries.get(entry.key) != entry:
            self._store(entry)

    def listed(self, scope: str | None, uids: set[str]) -> None:
        """A full list replaced what the cache held for the scope."""
        stale = [
            key
            for key, entry in self._entries.items()
            if (scope is None or key[0] == scope) and entry.view.uid not in uids
        ]
        for key in stale:
            self._drop(key)
        self._synced.add(scope)
