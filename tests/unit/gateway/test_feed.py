"""The namespace feed behind GET …/tasks:watch: counts kept by each change of the watch cache,
and per-stream sets of changed names (coalesced: a slow stream writes a task once)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from asynctask_gateway.cache import TaskCache, project
from asynctask_gateway.feed import NamespaceFeed, counts_document
from asynctask_gateway.kube import Kube
from asynctask_gateway.metrics import Metrics
from asynctask_gateway.watching import detail, frame, watch_query
from tests.unit.gateway.test_cache import ScriptedApiserver, settle


def task(
    name: str, rv: str, phase: str | None = None, queue: str = "q", namespace: str = "ns"
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "resourceVersion": rv,
            "labels": {"app": "web"},
        },
        "spec": {"queue": queue, "request": {"x": 1}},
        "status": {"phase": phase} if phase else {},
    }


def test_counts_follow_each_change_without_recounting() -> None:
    feed = NamespaceFeed()
    a1, a2 = project(task("a", "1")), project(task("a", "2", "Processing"))
    b1 = project(task("b", "3", "Succeeded", queue="r"))
    feed.changed(("ns", "a"), None, a1)
    feed.changed(("ns", "b"), None, b1)
    assert feed.counts("ns") == {
        "total": 2,
        "phases": {"Pending": 1, "Succeeded": 1},
        "queues": {"q": {"Pending": 1}, "r": {"Succeeded": 1}},
    }
    feed.changed(("ns", "a"), a1, a2)
    assert feed.counts("ns")["phases"] == {"Processing": 1, "Succeeded": 1}
    feed.changed(("ns", "a"), a2, None)
    feed.changed(("ns", "b"), b1, None)
    assert feed.counts("ns") == {"total": 0, "phases": {}, "queues": {}}
    assert feed.counts("elsewhere")["total"] == 0


def test_a_slow_stream_gets_each_changed_name_once_and_counts_only_when_they_moved() -> None:
    feed = NamespaceFeed()
    a1, a2 = project(task("a", "1", "Processing")), project(task("a", "2", "Processing"))
    with feed.subscribe("ns") as sub, feed.subscribe("other") as elsewhere:
        assert sub.take() == ([], True)  # the first write sends the counts
        feed.changed(("ns", "a"), None, a1)
        for rv in range(3, 8):  # progress: five changes, one name, same phase
            feed.changed(("ns", "a"), a1, project(task("a", str(rv), "Processing")))
        feed.changed(("ns", "b"), None, project(task("b", "9")))
        assert sub.signal.is_set() and not elsewhere.signal.is_set()
        assert sub.take() == (["a", "b"], True)
        assert not sub.signal.is_set()
        feed.changed(("ns", "a"), a1, a2)  # progress only: the counts did not move
        assert sub.take() == (["a"], False)
        assert feed.subscribers("ns") == 1
    assert feed.subscribers("ns") == 0


async def test_the_watch_cache_feeds_it_from_list_watch_and_deletions() -> None:
    api = ScriptedApiserver(
        lists=[[task("a", "1"), task("b", "2", "Processing")]],
        watches=[
            [
                {"type": "MODIFIED", "object": task("a", "3", "Succeeded")},
                {"type": "DELETED", "object": task("b", "4", "Processing")},
            ]
        ],
    )
    feed = NamespaceFeed()
    cache = TaskCache(cast(Kube, api), ["ns"], Metrics())
    cache.listeners.append(feed.changed)
    with feed.subscribe("ns") as sub:
        runner = asyncio.create_task(cache.run())
        try:
            await settle(cache, lambda: cache.get("ns", "b") is None and len(cache) == 1)
        finally:
            runner.cancel()
        names, counts_changed = sub.take()
    assert names == ["a", "b"] and counts_changed
    assert feed.counts("ns") == {
        "total": 1,
        "phases": {"Succeeded": 1},
        "queues": {"q": {"Succeeded": 1}},
    }


def test_counts_document_leaves_out_empty_cells() -> None:
    from collections import Counter

    assert counts_document(Counter({("q", "Pending"): 0})) == {
        "total": 0,
        "phases": {},
        "queues": {},
    }


def test_the_stream_filters_by_queue_and_labels_and_refuses_a_phase() -> None:
    query = watch_query({"queue": "q", "labelSelector": "app=web"})
    assert query.matches(project(task("a", "1")))
    assert not query.matches(project(task("a", "1", queue="r")))
    with pytest.raises(ValueError, match="unsupported parameter 'phase'"):
        watch_query({"phase": "Pending"})
    with pytest.raises(ValueError, match="invalid label selector"):
        watch_query({"labelSelector": "a in b"})


def test_a_frame_is_one_sse_event_of_compact_json() -> None:
    assert frame("task", {"a": 1}, "7") == b'id: 7\nevent: task\ndata: {"a":1}\n\n'
    assert frame("counts", {}) == b"event: counts\ndata: {}\n\n"


def test_the_detail_has_the_request_and_the_status_the_view_leaves_out() -> None:
    obj = task("a", "5", "Succeeded")
    obj["status"].update(
        conditions=[{"type": "Ready", "status": "True"}],
        webhook={"phase": "Succeeded", "delivered": True},
        result={"r": 1},
        queuedTime="2026-01-01T00:00:00Z",
    )
    obj["metadata"]["annotations"] = {"asynctask.dev/created-by": "ada"}
    doc = detail(obj)
    assert doc["spec"]["request"] == {"x": 1} and doc["task"]["result"] == {"r": 1}
    assert set(doc["status"]) == {"conditions", "webhook", "queuedTime"}
    assert doc["labels"] == {"app": "web"}
    assert doc["annotations"] == {"asynctask.dev/created-by": "ada"}
    assert doc["task"]["archived"] is False
    assert detail(obj, archived=True)["task"]["archived"] is True  # read from the archive
