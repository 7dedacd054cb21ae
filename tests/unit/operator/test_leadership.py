"""The election's loops (leadership.Elector) over an in-memory Lease with the apiserver's
optimistic concurrency: who acquires, who waits, a release, a lost Lease. The real
apiserver runs the same in tests/e2e/test_leader_election.py."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest

from asynctask_operator.errors import Unavailable
from asynctask_operator.leader import leadership
from asynctask_operator.leader.election import LeaseRecord
from asynctask_operator.leader.leadership import Conflict, Elector, LeaseLock
from asynctask_operator.settings import LeaseConfig

FAST = LeaseConfig(
    duration_seconds=2,
    renew_interval_seconds=0.05,
    renew_deadline_seconds=0.3,
    retry_period_seconds=0.02,
)


class MemoryLease(LeaseLock):
    """One Lease in memory: a create of an existing one, or a replace of another version,
    is a Conflict (409), as the apiserver answers."""

    def __init__(self) -> None:  # no client: nothing to load
        self.namespace, self.name = "ns", "lease"
        self.obj: dict[str, Any] | None = None
        self.version = 0
        self.failing = False

    def _check(self) -> None:
        if self.failing:
            raise Unavailable("ClientConnectorError: apiserver unreachable")

    async def read(self) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.obj)

    def _store(self, spec: dict[str, Any]) -> None:
        self.version += 1
        self.obj = {"metadata": {"resourceVersion": str(self.version)}, "spec": spec}

    async def create(self, spec: dict[str, Any]) -> None:
        self._check()
        if self.obj is not None:
            raise Conflict("AlreadyExists")
        self._store(spec)

    async def replace(self, read: dict[str, Any], spec: dict[str, Any]) -> None:
        self._check()
        assert self.obj is not None
        if read["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
            raise Conflict("the object has been modified")
        self._store(spec)

    def holder(self) -> str:
        return LeaseRecord.from_object(self.obj or {}).holder


async def test_one_acquires_the_other_waits_until_it_is_released() -> None:
    lease = MemoryLease()
    a, b = Elector(lease, FAST, "a_1"), Elector(lease, FAST, "b_2")
    await asyncio.wait_for(a.acquire(), 1)
    waiting = asyncio.create_task(b.acquire())
    await asyncio.sleep(0.2)
    assert not waiting.done() and lease.holder() == "a_1"
    await a.release()
    assert lease.holder() == ""
    await asyncio.wait_for(waiting, 1)  # at its next try, not after the 2 s term
    spec = (lease.obj or {})["spec"]
    assert spec["holderIdentity"] == "b_2" and spec["leaseTransitions"] == 1


async def test_a_silent_holder_is_replaced_after_its_term() -> None:
    lease = MemoryLease()
    await Elector(lease, FAST, "dead_1").acquire()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(Elector(lease, FAST, "b_2").acquire(), 5)
    assert loop.time() - started >= FAST.duration_seconds
    assert lease.holder() == "b_2"


async def test_a_leader_renews_and_loses_the_lease_to_another_holder() -> None:
    lease = MemoryLease()
    a = Elector(lease, FAST, "a_1")
    await a.acquire()
    keeping = asyncio.create_task(a.keep())
    await asyncio.sleep(0.2)
    assert not keeping.done() and lease.version > 1  # renewed meanwhile
    assert lease.obj is not None
    lease._store({**lease.obj["spec"], "holderIdentity": "usurper_9"})
    assert await asyncio.wait_for(keeping, 1) == "usurper_9 holds it now"
    await a.release()  # not ours: left alone
    assert lease.holder() == "usurper_9"


async def test_a_leader_that_cannot_renew_gives_up_at_its_deadline() -> None:
    lease = MemoryLease()
    a = Elector(lease, FAST, "a_1")
    await a.acquire()
    lease.failing = True
    assert await asyncio.wait_for(a.keep(), 2) == "not renewed for 0.3 s"


async def test_a_release_that_fails_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    lease = MemoryLease()
    a = Elector(lease, FAST, "a_1")
    await a.acquire()
    lease.failing = True
    await a.release()
    assert "cannot release the Lease" in caplog.text


def test_identity_and_namespace_come_from_the_downward_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POD_NAME", "asynctask-operator-7d9f-abcde")
    monkeypatch.setenv("POD_NAMESPACE", "asynctask-system")
    first, second = leadership.identity(), leadership.identity()
    assert first.startswith("asynctask-operator-7d9f-abcde_") and first != second
    assert leadership.lease_namespace() == "asynctask-system"
    monkeypatch.delenv("POD_NAMESPACE")
    monkeypatch.setattr(leadership, "SERVICE_ACCOUNT_NAMESPACE", Path("/nonexistent"))
    assert leadership.lease_namespace() == "default"
