"""Large payloads in the task logic: the grant every publish carries, the references the
operator refuses, and a worker's stored result written as ``status.resultRef``; wired as
the operator wires it, against the fake API, broker and store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from asynctask_operator.deadlines import Kind
from asynctask_operator.errors import StoreError
from asynctask_operator.settings import PayloadConfig
from asynctask_worker.messages import ErrorInfo, Phase
from asynctask_worker.payloads import PayloadRef
from tests.unit.operator.fakes import FakeStore
from tests.unit.operator.test_tracking import NS, Harness

BUCKET = "payloads"
SHA = "ab" * 32
CONFIG = PayloadConfig(
    endpoint="http://127.0.0.1:9000", bucket=BUCKET, threshold_bytes=1000, url_seconds=600
)


def ref(key: str, bucket: str = BUCKET, **fields: Any) -> dict[str, Any]:
    return {
        "bucket": bucket,
        "key": key,
        "size": 5,
        "contentType": "text/csv",
        "sha256": SHA,
        **fields,
    }


def presigned(h: Harness) -> list[str]:
    store = h.logic.payloads.store
    assert isinstance(store, FakeStore)
    return store.presigned


@pytest.fixture
async def stored() -> AsyncIterator[Harness]:
    h = Harness(payloads=CONFIG, store=FakeStore())
    yield h
    await h.logic.webhooks.close()


@pytest.fixture
async def off() -> AsyncIterator[Harness]:
    h = Harness()
    yield h
    await h.logic.webhooks.close()


async def test_every_publish_carries_urls_of_the_request_and_the_result_key(
    stored: Harness,
) -> None:
    h = stored
    upload = f"asynctask/{NS}/uploads/0123"
    await h.tracker.observe(h.create(request=None, requestRef=ref(upload)))
    [msg] = h.broker.tasks
    assert msg.request is None and msg.request_ref == PayloadRef.model_validate(ref(upload))
    grant = msg.payload
    assert grant is not None
    assert grant.request_url == f"https://store.test/{BUCKET}/{upload}?method=GET&n=0"
    key = f"asynctask/{NS}/uid-t1/result"
    assert grant.result_url == f"https://store.test/{BUCKET}/{key}?method=PUT&n=1"
    assert (grant.result_bucket, grant.result_key, grant.threshold_bytes) == (BUCKET, key, 1000)
    assert grant.expires_at is not None and msg.published_at < grant.expires_at
    assert h.metrics.value("asynctask_operator_payload_grants_total") == 1


async def test_a_retry_gets_fresh_urls_and_an_inline_request_only_a_result_url(
    stored: Harness,
) -> None:
    h = stored
    await h.tracker.observe(h.create(retries=1, retryBackoffSeconds=1))
    await h.send(Phase.ERROR, error=ErrorInfo(reason="Boom"))
    await h.tracker.fire("uid-t1", Kind.RETRY)
    first, second = h.broker.tasks
    assert second.attempt == 2 and first.request == second.request == {"n": 1}
    assert first.payload is not None and second.payload is not None
    assert first.payload.request_url is None and second.payload.request_url is None
    assert first.payload.result_url != second.payload.result_url  # presigned again
    assert first.payload.result_key == second.payload.result_key  # the one result key


async def test_no_grant_when_storage_is_off(off: Harness) -> None:
    await off.tracker.observe(off.create())
    assert off.broker.tasks[0].payload is None


@pytest.mark.parametrize(
    ("spec_ref", "words"),
    [
        (ref(f"asynctask/{NS}/uploads/x", bucket="elsewhere"), "only the configured bucket"),
        (ref("asynctask/team-b/uploads/x"), "not under 'asynctask/team-a/'"),
        (ref(f"asynctask/{NS}/../team-b/uploads/x"), "not under"),
        (ref(f"other/{NS}/uploads/x"), "not under"),
    ],
)
async def test_a_foreign_request_ref_ends_the_task_without_presigning_it(
    stored: Harness, spec_ref: dict[str, Any], words: str
) -> None:
    h = stored
    await h.tracker.observe(h.create(request=None, requestRef=spec_ref))
    assert h.broker.tasks == [] and presigned(h) == []
    [status] = h.api.writes
    assert status["phase"] == "Error" and status["error"]["reason"] == "RequestRefRefused"
    assert words in status["error"]["message"]


async def test_a_request_ref_without_storage_says_how_to_enable_it(off: Harness) -> None:
    await off.tracker.observe(off.create(request=None, requestRef=ref("asynctask/a/uploads/x")))
    [status] = off.api.writes
    assert status["error"]["reason"] == "PayloadStorageOff"
    assert "ASYNCTASK_S3_ENDPOINT" in status["error"]["message"]
    assert off.broker.tasks == []


async def test_request_too_large_says_how_to_enable_offload_when_it_is_off(off: Harness) -> None:
    await off.tracker.observe(off.create(request="x" * 300_000))
    [status] = off.api.writes
    assert status["error"]["reason"] == "RequestTooLarge"
    assert "ASYNCTASK_S3_ENDPOINT" in status["error"]["message"]


async def test_a_stored_result_is_written_as_result_ref_without_a_result(stored: Harness) -> None:
    h = stored
    await h.tracker.observe(h.create())
    key = f"asynctask/{NS}/uid-t1/result"
    await h.send(Phase.SUCCEEDED, result_ref=PayloadRef.model_validate(ref(key)))
    status = h.api.writes[-1]
    assert status["phase"] == "Succeeded" and status["resultRef"] == ref(key)
    assert "result" not in status


@pytest.mark.parametrize(
    "key",
    [f"asynctask/{NS}/uid-other/result", "asynctask/team-b/uid-t1/result", "secret/object"],
)
async def test_a_result_ref_other_than_the_tasks_result_key_is_refused(
    stored: Harness, key: str
) -> None:
    h = stored
    await h.tracker.observe(h.create())
    await h.send(Phase.SUCCEEDED, result_ref=PayloadRef.model_validate(ref(key)))
    status = h.api.writes[-1]
    assert status["phase"] == "Error" and status["error"]["reason"] == "ResultRefRefused"
    assert "resultRef" not in status and "result" not in status
    assert f"asynctask/{NS}/uid-t1/result" in status["error"]["message"]
    assert (
        h.metrics.value("asynctask_operator_payload_refused_total", reason="ResultRefRefused") == 1
    )


async def test_a_result_ref_is_refused_when_storage_is_off(off: Harness) -> None:
    await off.tracker.observe(off.create())
    await off.send(Phase.SUCCEEDED, result_ref=PayloadRef.model_validate(ref("k")))
    assert off.api.writes[-1]["error"]["reason"] == "ResultRefRefused"


async def test_a_grant_that_cannot_be_presigned_publishes_nothing(stored: Harness) -> None:
    h = stored
    store = h.logic.payloads.store
    assert isinstance(store, FakeStore)
    store.down = True
    with pytest.raises(StoreError, match="Could not connect"):
        await h.tracker.observe(h.create())
    assert h.broker.tasks == [] and h.api.writes == []
    assert h.metrics.value("asynctask_operator_payload_store_errors_total") == 1


async def test_the_watchs_deletion_of_a_task_deletes_its_objects(stored: Harness) -> None:
    h = stored
    upload = f"asynctask/{NS}/uploads/0123"
    await h.tracker.observe(h.create(request=None, requestRef=ref(upload)))
    loop = asyncio.create_task(h.logic.payloads.deleting())
    try:
        await h.tracker.deleted(h.api.objects.pop((NS, "t1")))
        await h.logic.payloads.drain()
    finally:
        loop.cancel()
    store = h.logic.payloads.store
    assert isinstance(store, FakeStore)
    assert store.journal == [
        f"delete s3://{BUCKET}/{upload}",
        f"delete s3://{BUCKET}/asynctask/{NS}/uid-t1/result",
    ]


async def test_a_request_and_a_request_ref_together_end_in_invalid_spec(stored: Harness) -> None:
    h = stored
    await h.tracker.observe(h.create(requestRef=ref(f"asynctask/{NS}/uploads/0123")))
    [status] = h.api.writes
    assert status["error"]["reason"] == "InvalidSpec" and "not both" in status["error"]["message"]
    assert h.broker.tasks == []
