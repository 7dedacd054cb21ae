"""The archiver, wired as the operator wires it, against a faked archive store: terminal
tasks queued once and written in batches, retried while the store is down, bounded in
memory, and TTL deletions held (bounded) until their task is archived."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from asynctask_operator.app import TaskLogic
from asynctask_operator.archive.backlog import Backlog, size
from asynctask_operator.archive.record import ArchiveRecord, record_of
from asynctask_operator.archiving import Archiver
from asynctask_operator.deadlines import Kind
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.settings import ArchiveConfig, Config
from tests.unit.operator.fakes import FakeApi, FakeBroker
from tests.unit.operator.test_tracking import until

NS = "team-a"


class FakeStore:
    """``ports.ArchiveStore`` in memory: rows by uid, every batch, and outages on demand."""

    def __init__(self) -> None:
        self.rows: dict[str, ArchiveRecord] = {}
        self.batches: list[list[str]] = []
        self.down = False
        self.failed = 0

    async def upsert(self, records: Sequence[ArchiveRecord]) -> None:
        if self.down:
            self.failed += 1
            raise ConnectionError("connection refused")
        self.batches.append([r.uid for r in records])
        self.rows.update({r.uid: r for r in records})

    async def maintain(self, retention_days: int) -> list[str]:
        return []


def task(name: str, phase: str = "Succeeded", request: Any = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": f"uid-{name}", "namespace": NS, "name": name},
        "spec": {"queue": "q", "request": request or {"n": 1}, **spec},
        "status": {"phase": phase, "completionTime": "2026-12-05T10:00:00Z", "attempts": 1},
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def wired() -> AsyncIterator[tuple[TaskLogic, FakeStore, FakeApi]]:
    journal: list[str] = []
    api, store = FakeApi(journal), FakeStore()
    config = Config(archive=ArchiveConfig(url="postgresql://x/y", flush_seconds=0.05))
    logic = TaskLogic.wire(config, api, FakeBroker(journal), OperatorMetrics(), archive=store)
    assert logic.archiver is not None
    loop = asyncio.create_task(logic.archiver.run())
    yield logic, store, api
    loop.cancel()
    await logic.webhooks.close()


async def test_terminal_tasks_are_archived_once_in_batches(
    wired: tuple[TaskLogic, FakeStore, FakeApi],
) -> None:
    logic, store, _ = wired
    archiver = logic.archiver
    assert archiver is not None
    for n in range(450):
        archiver.offer("MODIFIED", task(f"t{n}"))
    archiver.offer("MODIFIED", task("live", phase="Processing"))
    archiver.offer("MODIFIED", task("t0"))  # the same task again: already queued
    await until(lambda: len(store.rows) == 450)
    assert sorted(len(b) for b in store.batches) == [50, 200, 200]
    archiver.offer("MODIFIED", task("t1"))  # archived already: not queued again
    archiver.offer("ADDED", task("t-new", phase="Failed"))
    await until(lambda: "uid-t-new" in store.rows)
    assert sum(len(b) for b in store.batches) == 451
    metrics = archiver.metrics
    assert metrics.value("asynctask_operator_archive_rows_total") == 451
    assert metrics.value("asynctask_operator_archive_queue_depth") == 0


async def test_a_deleted_terminal_task_is_archived_from_its_last_state(
    wired: tuple[TaskLogic, FakeStore, FakeApi],
) -> None:
    logic, store, _ = wired
    assert logic.archiver is not None
    logic.archiver.offer("DELETED", task("gone", phase="Cancelled"))
    await until(lambda: "uid-gone" in store.rows)
    assert store.rows["uid-gone"].phase == "Cancelled"
    assert not logic.archiver.backlog.archived("uid-gone")  # nothing left to remember


async def test_writes_are_retried_while_the_store_is_down_and_nothing_is_lost(
    wired: tuple[TaskLogic, FakeStore, FakeApi],
) -> None:
    logic, store, _ = wired
    archiver = logic.archiver
    assert archiver is not None
    store.down = True
    for n in range(30):
        archiver.offer("MODIFIED", task(f"t{n}"))
    await until(lambda: store.failed >= 2)
    assert archiver.metrics.value("asynctask_operator_archive_queue_depth") == 30
    store.down = False
    await until(lambda: len(store.rows) == 30, within=10)
    assert archiver.metrics.value("asynctask_operator_archive_failures_total") >= 2


async def test_the_ttl_deletion_waits_for_the_archive_then_goes_ahead(
    wired: tuple[TaskLogic, FakeStore, FakeApi],
) -> None:
    logic, store, api = wired
    archiver = logic.archiver
    assert archiver is not None
    store.down = True
    body = api.add(task("t1", ttlSecondsAfterFinished=0))
    await logic.tracker.observe(body)
    archiver.offer("MODIFIED", body)
    await logic.tracker.fire("uid-t1", Kind.TTL)
    assert api.deleted == []  # held: not archived yet
    assert logic.timers.due("uid-t1", Kind.TTL) is not None  # it asks again later
    store.down = False
    # Once archived, the held deletion is due at once (not after the next recheck).
    await until(lambda: "uid-t1" in store.rows, within=10)
    due = logic.timers.due("uid-t1", Kind.TTL)
    assert due is not None
    await logic.tracker.fire("uid-t1", Kind.TTL)
    assert api.deleted == ["t1"]
    assert archiver.metrics.value("asynctask_operator_archive_unarchived_deletions_total") == 0


def test_a_deletion_waits_at_most_ttl_wait_seconds_and_then_counts() -> None:
    clock, metrics = Clock(), OperatorMetrics()
    config = ArchiveConfig(url="postgresql://x/y", ttl_wait_seconds=100)
    archiver = Archiver(config, FakeStore(), FakeApi([]), metrics, clock=clock)
    assert archiver.hold_deletion("u") == 30.0
    clock.now += 90
    assert archiver.hold_deletion("u") == pytest.approx(10.0)
    clock.now += 10
    assert archiver.hold_deletion("u") is None
    assert metrics.value("asynctask_operator_archive_unarchived_deletions_total") == 1


async def test_past_the_memory_bound_tasks_wait_by_name_and_are_read_again(
    wired: tuple[TaskLogic, FakeStore, FakeApi],
) -> None:
    logic, store, api = wired
    archiver = logic.archiver
    assert archiver is not None
    store.down = True
    big = "x" * 400_000
    archiver.backlog.max_bytes = 2_100_000  # five such rows
    for n in range(12):
        archiver.offer("MODIFIED", api.add(task(f"t{n}", request={"blob": big})))
    assert archiver.backlog.rows == 5 and len(archiver.backlog) == 12
    assert archiver.backlog.bytes <= archiver.backlog.max_bytes
    del api.objects[(NS, "t11")]  # deleted before it could be read again
    store.down = False
    await until(lambda: len(store.rows) == 11, within=10)
    assert "uid-t11" not in store.rows
    assert store.rows["uid-t10"].request == '{"blob":"' + big + '"}'
    assert archiver.metrics.value("asynctask_operator_archive_lost_total") == 1
    assert "get t10" in api.journal  # a read, never a write


def test_the_backlog_counts_rows_by_their_size() -> None:
    record = record_of(task("a", request={"s": "y" * 1000}))
    assert record is not None
    backlog = Backlog(max_bytes=10_000)
    backlog.add(record)
    assert backlog.bytes == size(record) > 1000
    backlog.written([record])
    assert backlog.bytes == 0 and backlog.archived("uid-a")
    assert not backlog.offer("DELETED", task("a")) and not backlog.archived("uid-a")
