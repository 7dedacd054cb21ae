"""The schedule controller's view of the apiserver: two list-watches.

One of the AsyncTaskSchedules and one of the tasks labelled ``asynctask.dev/schedule`` (a
label selector: the operator's other tasks are not held twice), in the namespaces the
operator serves. The controller fires nothing until both have listed every scope once: a
slot is then judged against every task that exists for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from asynctask_operator.apiserver.apiclient import ApiClient
from asynctask_operator.apiserver.listwatch import Kind, ListWatch, OutageReport, Scope
from asynctask_operator.apiserver.resource import schedules_path, tasks_path
from asynctask_operator.schedules.controller import ScheduleController
from asynctask_operator.schedules.runs import SCHEDULE_LABEL
from asynctask_operator.task_watch import scopes

log = logging.getLogger("asynctask.operator.schedules")


class _Listed:
    """Which scopes of a list-watch have listed once."""

    def __init__(self, scopes: Sequence[Scope], done: Callable[[], None]) -> None:
        self._waiting = set(scopes)
        self._done = done

    def scope(self, scope: Scope) -> None:
        self._waiting.discard(scope)
        if not self._waiting:
            self._done()


class ScheduleSink:
    def __init__(
        self, controller: ScheduleController, serves: Callable[[str], bool], listed: _Listed
    ) -> None:
        self._c, self._serves, self._listed = controller, serves, listed

    def event(self, kind: Kind, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if not self._serves(namespace):
            return
        if kind == "DELETED" or meta.get("deletionTimestamp"):
            self._c.schedule_gone(namespace, name)
        else:
            self._c.schedule_seen(obj)

    def listed(self, scope: Scope, uids: set[str]) -> None:
        # gone while unwatched: keys of the scope the list no longer had
        present = set(uids)
        for namespace, name in self._c.known_schedules():
            if scope is None or namespace == scope:
                entry_uid = self._c.uid_of(namespace, name)
                if entry_uid not in present:
                    self._c.schedule_gone(namespace, name)
        self._listed.scope(scope)


class RunSink:
    def __init__(
        self, controller: ScheduleController, serves: Callable[[str], bool], listed: _Listed
    ) -> None:
        self._c, self._serves, self._listed = controller, serves, listed

    def event(self, kind: Kind, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "")
        schedule = str((meta.get("labels") or {}).get(SCHEDULE_LABEL) or "")
        if not schedule or not self._serves(namespace):
            return
        if kind == "DELETED":
            self._c.run_gone(namespace, schedule, str(meta.get("uid") or ""))
        else:
            self._c.run_seen(namespace, schedule, obj)

    def listed(self, scope: Scope, uids: set[str]) -> None:
        for namespace, schedule, uid in self._c.known_runs():
            if (scope is None or namespace == scope) and uid not in uids:
                self._c.run_gone(namespace, schedule, uid)
        self._listed.scope(scope)


class ScheduleWatch:
    def __init__(
        self,
        api: ApiClient,
        namespaces: Sequence[str],
        controller: ScheduleController,
        *,
        watch_timeout: int = 300,
        outage: OutageReport | None = None,
    ) -> None:
        watched, serves = scopes(namespaces)
        lists = {"schedules", "tasks"}

        def done(which: str) -> Callable[[], None]:
            def listed() -> None:
                lists.discard(which)
                if not lists and not controller.synced.is_set():
                    log.info("schedules and their tasks listed: serving %d", len(controller))
                    controller.synced.set()

            return listed

        self.schedules = ListWatch(
            api,
            schedules_path,
            watched,
            ScheduleSink(controller, serves, _Listed(watched, done("schedules"))),
            watch_timeout=watch_timeout,
            outage=outage,
        )
        self.tasks = ListWatch(
            api,
            tasks_path,
            watched,
            RunSink(controller, serves, _Listed(watched, done("tasks"))),
            watch_timeout=watch_timeout,
            outage=outage,
            selector={"labelSelector": SCHEDULE_LABEL},
        )

    async def run(self) -> None:
        await asyncio.gather(self.schedules.run(), self.tasks.run())
