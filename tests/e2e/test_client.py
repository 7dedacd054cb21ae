"""The Python client on the real stack, each test once through the Kubernetes API and once
through the gateway (the ``client`` fixture), with the same caller and the same body."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from pydantic import BaseModel

from asynctask_client import (
    ApiError,
    Client,
    Phase,
    TaskCancelled,
    TaskDeleted,
    TaskError,
    TaskFailed,
    TaskTimedOut,
    TaskView,
    WaitTimeout,
)

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.e2e.gateway_fixtures", "tests.e2e.client_fixtures"]


class Steps(BaseModel):
    steps: int
    greeting: str


def test_updates_follow_a_task_to_its_result_and_the_result_validates_into_a_model(
    client: Client,
) -> None:
    task = client.submit("cl-steps", {"steps": 3, "pause": 1.2, "name": "Ada"}, timeout=60)
    assert task.view.phase is Phase.PENDING and not task.done
    views = list(task.updates(timeout=60))
    for view in views:
        print(f"{view.phase.value:<11} {view.progress:3d}% {view.message}")
    assert views[-1].phase is Phase.SUCCEEDED and views[-1].progress == 100
    assert [v for v in views if v.phase is Phase.PROCESSING and 0 < v.progress < 100], (
        "no progress was seen while the task ran"
    )
    progress = [v.progress for v in views]
    assert progress == sorted(progress)
    assert len({v.resource_version for v in views}) == len(views), "a state was repeated"
    assert task.wait(5, model=Steps) == Steps(steps=3, greeting="Hello, Ada!")
    assert task.wait(5) == {"steps": 3, "greeting": "Hello, Ada!"}


def test_each_terminal_phase_raises_its_own_exception(client: Client) -> None:
    failed = client.submit("cl-refuses", {})
    errored = client.submit("cl-raises", {})
    timed_out = client.submit("cl-sleepy", {"seconds": 30}, timeout=1)
    with pytest.raises(TaskFailed) as fail:
        failed.wait(60)
    assert fail.value.reason == "Refused" and fail.value.message == "the request was refused"
    with pytest.raises(TaskError) as error:
        errored.wait(60)
    assert "RuntimeError: the handler broke" in (error.value.traceback or "")
    with pytest.raises(TaskTimedOut) as late:
        timed_out.wait(60)
    assert late.value.view.phase is Phase.TIMED_OUT


def test_a_cancelled_task_raises_cancelled_and_a_short_wait_raises_wait_timeout(
    client: Client,
) -> None:
    task = client.submit("cl-sleepy", {"seconds": 60})
    for view in task.updates(timeout=30):
        if view.phase is Phase.PROCESSING:
            break
    with pytest.raises(WaitTimeout) as still:
        task.wait(1)
    assert still.value.view.phase is Phase.PROCESSING and isinstance(still.value, TimeoutError)
    task.cancel()
    with pytest.raises(TaskCancelled):
        task.wait(60)
    with pytest.raises(ApiError) as again:
        task.cancel()
    assert again.value.status == 409


def test_submit_and_wait_in_one_call_and_idempotent_retries(client: Client) -> None:
    key = uuid.uuid4().hex
    task = client.submit("cl-steps", {"steps": 1, "pause": 0.2}, idempotency_key=key, wait=30)
    assert task.done and task.view.phase is Phase.SUCCEEDED
    retry = client.submit("cl-steps", {"steps": 1, "pause": 0.2}, idempotency_key=key)
    assert retry.name == task.name and retry.done
    with pytest.raises(ApiError) as reused:
        client.submit("cl-steps", {"steps": 2}, idempotency_key=key)
    assert reused.value.status == 422 and reused.value.reason == "IdempotencyKeyReused"


def test_get_and_list_by_queue_and_phase(client: Client) -> None:
    label = uuid.uuid4().hex[:8]
    done = client.submit("cl-steps", {"steps": 1, "pause": 0.1}, labels={"run": label}, wait=30)
    waiting = client.submit("cl-sleepy", {"seconds": 30}, labels={"run": label}, ttl=60)
    assert client.get(done.name).view == done.view
    mine = client.list(label_selector=f"run={label}")
    assert sorted(t.name for t in mine) == sorted([done.name, waiting.name])
    succeeded = client.list(queue="cl-steps", phase="Succeeded")
    assert done.name in {t.name for t in succeeded}
    assert all(t.view.phase is Phase.SUCCEEDED for t in succeeded)
    assert waiting.name not in {t.name for t in succeeded}
    waiting.cancel()


def test_the_async_twin_follows_the_same_states(client: Client) -> None:
    task = client.submit("cl-steps", {"steps": 2, "pause": 0.8})

    async def follow() -> list[TaskView]:
        return [view async for view in task.aupdates(timeout=60)]

    views = asyncio.run(follow())
    assert views[-1].phase is Phase.SUCCEEDED
    assert asyncio.run(task.wait_async(5, model=Steps)).steps == 2


def test_refusals_are_api_errors_with_their_causes_and_a_deleted_task_ends_updates(
    client: Client,
) -> None:
    with pytest.raises(ApiError) as missing:
        client.get("no-such-task")
    assert missing.value.status == 404
    with pytest.raises(ApiError) as invalid:
        client.submit("cl-steps", {}, retries=99)
    assert invalid.value.status == 422, invalid.value
    assert "retries" in str(invalid.value)
    task = client.submit("cl-sleepy", {"seconds": 30})
    states = task.updates(timeout=60)
    next(states)
    task.delete()
    with pytest.raises(TaskDeleted):
        for _ in states:
            pass
