"""The watch cache's own logic, against a scripted apiserver (a stand-in for the Kube client
that answers lists and watches from a script; the real apiserver is in the e2e tests):
resume from the last resourceVersion, relist on 410 Gone, bookmarks, wake-ups."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, cast

import pytest

from asynctask_gateway.cache import TaskCache, project
from asynctask_gateway.kube import ApiError, Kube
from asynctask_gateway.metrics import Metrics


def task(name: str, rv: str, phase: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": rv},
        "spec": {"queue": "q"},
        "status": {"phase": phase} if phase else {},
    }


class ScriptedApiserver:
    """Lists answer ``lists`` in turn; each watch plays the next script of ``watches``."""

    def __init__(
        self, lists: list[list[dict[str, Any]]], watches: list[list[dict[str, Any]]]
    ) -> None:
        self.lists, self.watches = lists, watches
        self.watch_versions: list[str] = []
        self.list_calls = 0

    async def request(self, method: str, path: str, **kw: Any) -> dict[str, Any]:
        items = self.lists[min(self.list_calls, len(self.lists) - 1)]
        self.list_calls += 1
        return {"items": items, "metadata": {"resourceVersion": f"list{self.list_calls}"}}

    async def watch(
        self,
        path: str,
        params: Mapping[str, str],
        read_timeout: float,
        on_open: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[dict[str, Any]]:
        self.watch_versions.append(params["resourceVersion"])
        assert params["allowWatchBookmarks"] == "true"
        on_open()
        script = self.watches.pop(0) if self.watches else []
        for event in script:
            yield event
        if not self.watches and not script:
            await asyncio.sleep(3600)


async def settle(cache: TaskCache, until: Any) -> None:
    for _ in range(200):
        if until():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the cache never got there")


async def test_list_then_watch_resumes_from_the_last_version_and_relists_on_gone() -> None:
    api = ScriptedApiserver(
        lists=[[task("a", "1"), task("b", "2")], [task("a", "9", "Succeeded")]],
        watches=[
            [
                {"type": "MODIFIED", "object": task("a", "3", "Processing")},
                {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "5"}}},
            ],
            [
                {"type": "ADDED", "object": task("c", "6")},
                {"type": "ERROR", "object": {"code": 410, "reason": "Expired"}},
            ],
        ],
    )
    metrics = Metrics()
    cache = TaskCache(cast(Kube, api), ["ns"], metrics)
    runner = asyncio.create_task(cache.run())
    try:
        await settle(cache, lambda: api.list_calls == 2 and len(api.watch_versions) == 3)
        # the second watch resumed from the bookmark; after 410 a new list, a new watch
        assert api.watch_versions == ["list1", "5", "list2"]
        assert cache.synced
        a = cache.get("ns", "a")
        assert a is not None and a.view.phase.value == "Succeeded"
        # b and c vanished while the watch was gone: the relist dropped them
        assert cache.get("ns", "b") is None and cache.get("ns", "c") is None
        assert len(cache) == 1
        assert metrics.watch_restarts.labels(reason="gone")._value.get() == 1
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


async def test_a_waiter_is_woken_by_the_change_and_reads_the_latest() -> None:
    cache = TaskCache(cast(Kube, None), ["ns"], Metrics())
    cache.seed(task("a", "1"))
    waiter = asyncio.create_task(cache.change("ns", "a", "1", 10))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    cache._store(project(task("a", "2", "Processing")))
    cache._store(project(task("a", "3", "Succeeded")))  # before the waiter ran
    entry = await asyncio.wait_for(waiter, 1)
    assert entry is not None and entry.view.resource_version == "3"


async def test_change_answers_at_once_when_the_state_differs_and_times_out_otherwise() -> None:
    cache = TaskCache(cast(Kube, None), ["ns"], Metrics())
    cache.seed(task("a", "2"))
    assert (await cache.change("ns", "a", "1", 10)) is not None  # newer than seen
    same = await cache.change("ns", "a", "2", 0.01)  # nothing new: as it is
    assert same is not None and same.view.resource_version == "2"
    assert await cache.change("ns", "missing", "2", 10) is None  # not held: at once
    assert await cache.change("ns", "missing", None, 0.01) is None  # waits for arrival


async def test_a_deletion_wakes_waiters_with_none() -> None:
    cache = TaskCache(cast(Kube, None), ["ns"], Metrics())
    cache.seed(task("a", "1"))
    waiter = asyncio.create_task(cache.change("ns", "a", "1", 10))
    await asyncio.sleep(0.01)
    cache._drop(("ns", "a"))
    assert await asyncio.wait_for(waiter, 1) is None


def test_seed_never_replaces_what_the_watch_delivered() -> None:
    cache = TaskCache(cast(Kube, None), ["ns"], Metrics())
    cache._store(project(task("a", "5", "Processing")))
    assert cache.seed(task("a", "4")).view.resource_version == "5"


def test_served_namespaces() -> None:
    assert TaskCache(cast(Kube, None), [], Metrics()).serves("any")
    some = TaskCache(cast(Kube, None), ["a", "b"], Metrics())
    assert some.serves("a") and not some.serves("c")


def test_api_errors_carry_the_status() -> None:
    exc = ApiError(410, {"reason": "Expired", "message": "too old"})
    assert exc.status == 410 and "too old" in str(exc)


def test_a_namespace_lists_its_own_entries_by_name() -> None:
    cache = TaskCache(cast(Kube, None), [], Metrics())
    for name in ("b", "a", "c"):
        cache.seed(task(name, "1"))
    cache.seed(
        {**task("z", "1"), "metadata": {"name": "z", "namespace": "other", "resourceVersion": "1"}}
    )
    assert [e.view.name for e in cache.in_namespace("ns")] == ["a", "b", "c"]
    cache._drop(("ns", "b"))
    cache._drop(("other", "z"))
    assert [e.view.name for e in cache.in_namespace("ns")] == ["a", "c"]
    assert cache.in_namespace("other") == [] and len(cache) == 2
