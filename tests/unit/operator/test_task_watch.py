"""The operator's watch of AsyncTasks: scopes, per-object order, deletions while unwatched.

The list+watch loop itself runs against the real apiserver in every e2e test; here the
sink is fed events directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kubernetes import client as k8s_client

from asynctask_operator.apiserver.apiclient import ApiClient
from asynctask_operator.apiserver.listwatch import Kind
from asynctask_operator.task_watch import TaskWatch, scopes


def obj(uid: str, namespace: str = "team-a", phase: str | None = None) -> dict[str, Any]:
    status = {"phase": phase} if phase else {}
    return {"metadata": {"uid": uid, "namespace": namespace, "name": f"t-{uid}"}, "status": status}


class Recorder:
    def __init__(self) -> None:
        self.handled: list[tuple[Kind, str, str | None]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, kind: Kind, body: dict[str, Any]) -> None:
        await self.gate.wait()
        phase = (body.get("status") or {}).get("phase")
        self.handled.append((kind, body["metadata"]["uid"], phase))


def watch(
    recorder: Recorder, namespaces: list[str], known: list[tuple[str, str, str]] | None = None
) -> TaskWatch:
    api = ApiClient(k8s_client.Configuration(host="http://127.0.0.1:9"))
    return TaskWatch(api, namespaces, recorder, known=lambda: list(known or []))


def test_names_are_watched_one_by_one_and_globs_cluster_wide() -> None:
    watched, serves = scopes([])
    assert watched == [None] and serves("anything")
    watched, serves = scopes(["b", "a", "b"])
    assert watched == ["a", "b"] and serves("a")
    watched, serves = scopes(["t-*", "prod"])
    assert watched == [None]
    assert serves("t-1") and serves("prod") and not serves("production") and not serves("x-t-1")
    # kopf's patterns, as the autoscaler reads them: comma-separated, "!" excludes
    watched, serves = scopes(["t-*,!t-skip"])
    assert watched == [None] and serves("t-1") and not serves("t-skip") and not serves("prod")
    watched, serves = scopes(["!kube-*"])
    assert watched == [None] and serves("team-a") and not serves("kube-system")


async def test_namespaces_not_served_are_ignored() -> None:
    recorder = Recorder()
    tw = watch(recorder, ["t-*"])
    tw.event("ADDED", obj("1", "t-1"))
    tw.event("ADDED", obj("2", "other"))
    await tw.join()
    assert recorder.handled == [("ADDED", "1", None)]


async def test_an_objects_events_queued_behind_a_running_one_are_folded_to_the_newest() -> None:
    recorder = Recorder()
    tw = watch(recorder, [])
    recorder.gate.clear()  # the first event of "1" is being handled (e.g. waits for its lock)
    tw.event("ADDED", obj("1"))
    await asyncio.sleep(0)
    tw.event("MODIFIED", obj("1", phase="Pending"))
    tw.event("MODIFIED", obj("1", phase="Succeeded"))
    tw.event("ADDED", obj("2"))  # another object is not held back by "1"
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert recorder.handled == []
    recorder.gate.set()
    await tw.join()
    assert sorted(recorder.handled) == [
        ("ADDED", "1", None),
        ("ADDED", "2", None),
        ("MODIFIED", "1", "Succeeded"),
    ]
    ones = [h for h in recorder.handled if h[1] == "1"]
    assert ones == [("ADDED", "1", None), ("MODIFIED", "1", "Succeeded")]


async def test_a_handler_that_fails_does_not_stop_the_watch() -> None:
    handled: list[str] = []

    async def handle(kind: Kind, body: dict[str, Any]) -> None:
        if body["metadata"]["uid"] == "bad":
            raise RuntimeError("boom")
        handled.append(body["metadata"]["uid"])

    api = ApiClient(k8s_client.Configuration(host="http://127.0.0.1:9"))
    tw = TaskWatch(api, [], handle, known=list)
    tw.event("ADDED", obj("bad"))
    tw.event("ADDED", obj("good"))
    await tw.join()
    assert handled == ["good"]


async def test_a_task_missing_from_a_new_list_was_deleted_while_unwatched() -> None:
    recorder = Recorder()
    known = [("1", "team-a", "t-1"), ("2", "team-a", "t-2"), ("3", "team-b", "t-3")]
    tw = watch(recorder, ["team-a", "team-b"], known)
    tw.event("LISTED", obj("1", "team-a"))
    tw.listed("team-a", {"1"})  # "2" is gone; "3" is in another scope, listed apart
    await tw.join()
    assert recorder.handled == [("LISTED", "1", None), ("DELETED", "2", None)]


async def test_a_cluster_wide_list_keeps_what_it_lists_in_every_namespace() -> None:
    recorder = Recorder()
    known = [("1", "t-1", "a"), ("2", "t-2", "b"), ("3", "other", "c")]
    tw = watch(recorder, ["t-*"], known)
    tw.event("LISTED", obj("1", "t-1"))
    tw.event("LISTED", obj("2", "t-2"))
    tw.listed(None, {"1", "2"})  # "3" is not the operator's to judge
    await tw.join()
    assert [kind for kind, *_ in recorder.handled] == ["LISTED", "LISTED"]
