"""A standby keeps the latest object of each task and hands them over once it starts."""

from __future__ import annotations

import asyncio
from typing import Any

from asynctask_operator.standby import Gate


def task(uid: str, version: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "resourceVersion": version}}


async def test_what_is_kept_leaves_out_the_managed_fields() -> None:
    gate = Gate()
    body = {"metadata": {"uid": "a", "managedFields": [{"manager": "kubectl"}]}, "spec": {}}
    gate.hold(None, body)
    handed: list[dict[str, Any]] = []

    async def handle(event_type: str | None, obj: dict[str, Any]) -> None:
        handed.append(obj)

    gate.start(handle)
    for _ in range(3):
        await asyncio.sleep(0)
    assert gate.open and handed == [{"metadata": {"uid": "a"}, "spec": {}}]
    assert body["metadata"]["managedFields"]  # the watch's object itself is left as it was


async def test_a_standby_keeps_the_latest_object_of_each_task_and_forgets_the_deleted() -> None:
    gate = Gate()
    assert gate.hold(None, task("a", "1")) and gate.hold("ADDED", task("b", "2"))
    assert gate.hold("MODIFIED", task("a", "3"))
    assert gate.hold("ADDED", task("c", "4")) and gate.hold("DELETED", task("c", "5"))
    assert len(gate) == 2 and not gate.started
    handed: list[tuple[str | None, str]] = []

    async def handle(event_type: str | None, body: dict[str, Any]) -> None:
        handed.append((event_type, body["metadata"]["resourceVersion"]))

    gate.start(handle)
    assert gate.started and not gate.open
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sorted(handed) == [(None, "2"), (None, "3")]  # as kopf's first listing would
    assert gate.open and len(gate) == 0
    assert not gate.hold("MODIFIED", task("a", "6"))  # later events go straight through


async def test_events_during_the_hand_over_are_handed_over_after_it_in_order() -> None:
    gate = Gate()
    gate.hold(None, task("a", "1"))
    release = asyncio.Event()
    handed: list[str] = []

    async def handle(event_type: str | None, body: dict[str, Any]) -> None:
        handed.append(body["metadata"]["resourceVersion"])
        await release.wait()

    gate.start(handle)
    await asyncio.sleep(0)
    assert handed == ["1"]
    assert gate.hold("MODIFIED", task("a", "2"))  # still handing over: kept, not run early
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert handed == ["1", "2"] and gate.open


async def test_closing_stops_a_hand_over() -> None:
    gate = Gate()
    gate.hold(None, task("a", "1"))
    gate.hold(None, task("b", "1"))
    handed: list[str] = []

    async def handle(event_type: str | None, body: dict[str, Any]) -> None:
        handed.append(body["metadata"]["uid"])
        await asyncio.Event().wait()  # never done

    gate.start(handle)
    await asyncio.sleep(0)
    await gate.close()
    assert len(handed) == 1 and len(gate) == 1
