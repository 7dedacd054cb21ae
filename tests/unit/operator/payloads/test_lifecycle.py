"""A deleted task's objects go with it, and the sweep removes orphans: what it deletes and
what it must never touch (another namespace's, a live task's, a young one's, an archived
task's result, anything not laid out as the project lays keys out)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.payloads.objects import PayloadObjects
from asynctask_operator.payloads.sweep import Sweeper
from asynctask_operator.settings import PayloadConfig
from asynctask_operator.task_watch import served
from asynctask_operator.tasks import TaskTable
from tests.unit.operator.fakes import FakeApi, FakeStore

BUCKET = "payloads"
NS = "team-a"
SHA = "cd" * 32
CONFIG = PayloadConfig(endpoint="http://127.0.0.1:9000", bucket=BUCKET, grace_seconds=100)
NOW = 10_000.0
OLD = NOW - 101  # past the grace
YOUNG = NOW - 99


def ref(key: str, bucket: str = BUCKET) -> dict[str, Any]:
    return {"bucket": bucket, "key": key, "size": 3, "sha256": SHA}


def body(uid: str, namespace: str = NS, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": uid, "namespace": namespace, "name": f"n-{uid}"},
        "spec": {"queue": "q", **spec},
    }


@pytest.fixture
async def deleting() -> AsyncIterator[tuple[PayloadObjects, FakeStore]]:
    store = FakeStore()
    objects = PayloadObjects(CONFIG, store, OperatorMetrics())
    loop = asyncio.create_task(objects.deleting())
    yield objects, store
    loop.cancel()


async def test_a_deleted_tasks_upload_and_result_are_deleted(
    deleting: tuple[PayloadObjects, FakeStore],
) -> None:
    objects, store = deleting
    upload = f"asynctask/{NS}/uploads/u1"
    store.put(BUCKET, upload)
    store.put(BUCKET, f"asynctask/{NS}/uid-1/result")
    store.put(BUCKET, f"asynctask/{NS}/uid-2/result")
    objects.deleted(NS, "uid-1", body("uid-1", requestRef=ref(upload))["spec"], None)
    await objects.drain()
    assert set(store.objects) == {(BUCKET, f"asynctask/{NS}/uid-2/result")}
    assert (
        objects.metrics.value("asynctask_operator_payload_objects_deleted_total", kind="request")
        == 1
    )


async def test_a_request_that_is_not_its_namespaces_upload_is_left_to_its_owner(
    deleting: tuple[PayloadObjects, FakeStore],
) -> None:
    objects, store = deleting
    other_result = f"asynctask/{NS}/uid-9/result"  # chaining: another task's result
    for key in (other_result, "asynctask/team-b/uploads/u1"):
        store.put(BUCKET, key)
        objects.deleted(NS, "uid-1", {"requestRef": ref(key)}, None)
    store.put("elsewhere", f"asynctask/{NS}/uploads/u1")
    objects.deleted(
        NS, "uid-1", {"requestRef": ref(f"asynctask/{NS}/uploads/u1", "elsewhere")}, None
    )
    await objects.drain()
    assert len(store.objects) == 3
    assert store.journal == [f"delete s3://{BUCKET}/asynctask/{NS}/uid-1/result"] * 3


async def test_the_request_ref_the_operator_held_is_used_for_a_task_deleted_unwatched(
    deleting: tuple[PayloadObjects, FakeStore],
) -> None:
    objects, store = deleting
    upload = f"asynctask/{NS}/uploads/u1"
    store.put(BUCKET, upload)
    from asynctask_worker.payloads import PayloadRef

    objects.deleted(NS, "uid-1", None, PayloadRef.model_validate(ref(upload)))
    await objects.drain()
    assert (BUCKET, upload) not in store.objects


async def test_with_the_archive_a_deleted_tasks_result_stays_and_a_failed_delete_is_counted() -> (
    None
):
    store = FakeStore()
    objects = PayloadObjects(CONFIG, store, OperatorMetrics(), keep_results=True)
    loop = asyncio.create_task(objects.deleting())
    try:
        upload = f"asynctask/{NS}/uploads/u1"
        objects.deleted(NS, "uid-1", {"requestRef": ref(upload)}, None)
        await objects.drain()
        assert store.journal == [f"delete s3://{BUCKET}/{upload}"]
        store.down = True
        objects.deleted(NS, "uid-2", {"requestRef": ref(upload)}, None)
        await objects.drain()
        assert objects.metrics.value("asynctask_operator_payload_store_errors_total") == 1
    finally:
        loop.cancel()


class FakeArchive:
    def __init__(self, uids: set[str], fail: bool = False) -> None:
        self.uids = uids
        self.fail = fail

    async def archived_uids(self, uids: Sequence[str]) -> set[str]:
        if self.fail:
            raise ConnectionError("the archive is down")
        return self.uids & set(uids)


def sweeper(store: FakeStore, live: list[dict[str, Any]], **kwargs: Any) -> Sweeper:
    table = TaskTable(FakeApi([]))
    for item in live:
        table.remember(item)
    return Sweeper(CONFIG, store, lambda: iter(table), OperatorMetrics(), **kwargs)


def stored(store: FakeStore) -> set[str]:
    return {key for _, key in store.objects}


async def test_the_sweep_deletes_orphans_past_the_grace_and_nothing_else() -> None:
    store = FakeStore()
    keep = {
        f"asynctask/{NS}/live/result",  # its task lives
        f"asynctask/{NS}/uploads/named",  # a live task names it
        f"asynctask/{NS}/gone-young/result",  # within the grace
        f"asynctask/{NS}/uploads/young",
        "asynctask/team-b/gone/result",  # a namespace this operator does not serve
        f"asynctask/{NS}/gone/other",  # not a key the project writes
        f"other/{NS}/gone/result",  # outside the prefix
    }
    doomed = {f"asynctask/{NS}/gone/result", f"asynctask/{NS}/uploads/orphan"}
    for key in keep | doomed:
        young = "young" in key
        store.put(BUCKET, key, modified=YOUNG if young else OLD)
    live = [body("live"), body("other", requestRef=ref(f"asynctask/{NS}/uploads/named"))]
    sweep = sweeper(store, live, serves=served([NS]))
    assert await sweep.sweep(NOW) == 2
    assert stored(store) == keep
    assert (
        sweep.metrics.value("asynctask_operator_payload_sweep_deletions_total", kind="result") == 1
    )


async def test_the_sweep_keeps_archived_results_and_waits_when_the_archive_cannot_say() -> None:
    store = FakeStore()
    for uid in ("archived", "forgotten"):
        store.put(BUCKET, f"asynctask/{NS}/{uid}/result", modified=OLD)
    down = sweeper(store, [], archive=FakeArchive(set(), fail=True))
    assert await down.sweep(NOW) == 0
    up = sweeper(store, [], archive=FakeArchive({"archived"}))
    assert await up.sweep(NOW) == 1
    assert stored(store) == {f"asynctask/{NS}/archived/result"}


def test_served_namespaces_are_exact_names_patterns_or_all() -> None:
    assert served(["a", "b"])("a") and not served(["a", "b"])("ab")
    assert served(["t-*"])("t-1") and not served(["t-*"])("u")
    assert served([])("anything")
