"""The schedule controller against a fake ScheduleApi and a fake clock: what one slot does
(create, AlreadyExists, Forbid, Replace, suspend, missed slots, history, bad schedules) and
how many writes a run costs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from asynctask_operator.errors import AlreadyExists, Unavailable
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.schedules.controller import ScheduleController
from asynctask_operator.schedules.runs import Run, Tally, beyond_history
from asynctask_worker.messages import TaskRef
from tests.unit.operator.test_tracking import until

T0 = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC).timestamp()
KEY = ("ns", "every")


class FakeApi:
    def __init__(self) -> None:
        self.tasks: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.statuses: list[dict[str, Any]] = []
        self.events: list[tuple[str, str]] = []

    async def create_task(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        self.calls.append(("create", name))
        if name in self.tasks:
            raise AlreadyExists(name)
        obj = {**body, "metadata": {**body["metadata"], "uid": f"uid-{name}",
                                    "creationTimestamp": "2026-12-05T12:00:00Z"}}  # fmt: skip
        self.tasks[name] = obj
        return obj

    async def cancel_task(self, namespace: str, name: str, uid: str) -> None:
        self.calls.append(("cancel", name))

    async def delete(self, namespace: str, name: str, uid: str) -> None:
        self.calls.append(("delete", name))
        self.tasks.pop(name, None)

    async def write_schedule_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> None:
        self.calls.append(("status", name))
        self.statuses.append(status)

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        pass


class Events:
    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    def record(self, ref: TaskRef, reason: str, message: str, *, about: str = "") -> None:
        self.recorded.append((reason, message))


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def make(**spec: Any) -> tuple[ScheduleController, FakeApi, Events, Clock]:
    api, events, clock = FakeApi(), Events(), Clock()
    controller = ScheduleController(api, events, OperatorMetrics(), clock=clock)
    obj = {
        "metadata": {"namespace": "ns", "name": "every", "uid": "s-uid", "generation": 1,
                     "creationTimestamp": "2026-12-05T12:00:00Z"},
        "spec": {"template": {"spec": {"queue": "q", "request": {}}}, **spec},
    }  # fmt: skip
    controller.schedule_seen(obj)
    return controller, api, events, clock


def finish(controller: ScheduleController, api: FakeApi, name: str, phase: str) -> None:
    obj = api.tasks[name]
    controller.run_seen("ns", "every", {**obj, "status": {"phase": phase,
                        "completionTime": "2026-12-05T12:00:30Z"}})  # fmt: skip


async def test_a_new_schedule_writes_ready_then_each_slot_creates_its_task() -> None:
    controller, api, _, clock = make(intervalSeconds=10)
    await controller.fire(KEY)
    assert api.calls == [("status", "every")]
    assert api.statuses[-1]["conditions"][0]["status"] == "True"
    assert api.statuses[-1]["nextScheduleTime"] == "2026-12-05T12:00:10Z"
    clock.now = T0 + 9.9
    api.calls.clear()
    await controller.fire(KEY)
    assert api.calls == []  # never early
    clock.now = T0 + 10.01
    await controller.fire(KEY)
    name = f"every-{int(T0) + 10}"
    assert api.calls == [("create", name), ("status", "every")]
    body = api.tasks[name]
    assert body["metadata"]["labels"] == {"asynctask.dev/schedule": "every"}
    assert body["metadata"]["annotations"] == {
        "asynctask.dev/scheduled-time": "2026-12-05T12:00:10Z"
    }
    assert body["metadata"]["ownerReferences"][0]["controller"] is True
    st = api.statuses[-1]
    assert st["lastScheduleTime"] == "2026-12-05T12:00:10Z" and st["activeCount"] == 1
    assert st["active"] == [{"name": name, "uid": f"uid-{name}"}]


async def test_a_slot_whose_task_exists_is_not_run_again() -> None:
    controller, api, _, clock = make(intervalSeconds=10)
    await controller.fire(KEY)
    name = f"every-{int(T0) + 10}"
    api.tasks[name] = {"metadata": {"name": name, "uid": "other"}}  # another leader's
    clock.now = T0 + 10.5
    await controller.fire(KEY)
    assert ("create", name) in api.calls and api.statuses[-1]["lastScheduleTime"]


async def test_forbid_skips_while_active_and_replace_cancels_first() -> None:
    controller, api, events, clock = make(intervalSeconds=10, concurrencyPolicy="Forbid")
    clock.now = T0 + 10.1
    await controller.fire(KEY)
    clock.now = T0 + 20.1
    await controller.fire(KEY)
    assert [c for c in api.calls if c[0] == "create"] == [("create", f"every-{int(T0) + 10}")]
    assert api.statuses[-1]["skippedCount"] == 1
    assert events.recorded[-1][0] == "Skipped"

    controller, api, _, clock = make(intervalSeconds=10, concurrencyPolicy="Replace")
    clock.now = T0 + 10.1
    await controller.fire(KEY)
    clock.now = T0 + 20.1
    await controller.fire(KEY)
    first, second = f"every-{int(T0) + 10}", f"every-{int(T0) + 20}"
    assert api.calls[-3:] == [("cancel", first), ("create", second), ("status", "every")]


async def test_after_a_gap_the_latest_slot_runs_and_the_rest_are_missed() -> None:
    controller, api, events, clock = make(intervalSeconds=10)
    clock.now = T0 + 95
    await controller.fire(KEY)
    assert [c for c in api.calls if c[0] == "create"] == [("create", f"every-{int(T0) + 90}")]
    st = api.statuses[-1]
    assert st["missedCount"] == 8 and st["lastMissedTime"] == "2026-12-05T12:01:20Z"
    assert ("Missed", "8 slot(s) missed, the latest 2026-12-05T12:01:20Z (8 in all)") in (
        events.recorded
    )
    clock.now = T0 + 125  # two more missed within a minute: counted, no second Event
    await controller.fire(KEY)
    assert api.statuses[-1]["missedCount"] == 10
    assert [r for r, _ in events.recorded].count("Missed") == 1


async def test_suspended_slots_pass_without_runs_or_misses() -> None:
    controller, api, _, clock = make(intervalSeconds=10, suspend=True)
    clock.now = T0 + 95
    await controller.fire(KEY)
    assert [c[0] for c in api.calls] == ["status"]
    assert api.statuses[-1]["conditions"][0]["reason"] == "Suspended"
    assert api.statuses[-1]["missedCount"] == 0


async def test_finished_tasks_beyond_the_history_limits_are_deleted() -> None:
    controller, api, _, clock = make(
        intervalSeconds=10, successfulTasksHistoryLimit=1, failedTasksHistoryLimit=0
    )
    for i in (1, 2, 3):
        clock.now = T0 + 10 * i + 0.1
        await controller.fire(KEY)
        finish(controller, api, f"every-{int(T0) + 10 * i}", "Succeeded" if i < 3 else "Failed")
    # at the third slot, two succeeded: the older one goes
    assert api.calls[-3:] == [
        ("create", f"every-{int(T0) + 30}"),
        ("status", "every"),
        ("delete", f"every-{int(T0) + 10}"),
    ]
    clock.now = T0 + 40.1
    api.calls.clear()
    await controller.fire(KEY)
    # one create, one status write, one delete: the failed one (failedTasksHistoryLimit 0)
    assert api.calls == [
        ("create", f"every-{int(T0) + 40}"),
        ("status", "every"),
        ("delete", f"every-{int(T0) + 30}"),
    ]
    assert set(api.tasks) == {f"every-{int(T0) + 20}", f"every-{int(T0) + 40}"}
    assert api.statuses[-1]["lastSuccessfulTime"] == "2026-12-05T12:00:30Z"


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ({"schedule": "0 3 * * *", "timeZone": "Mars/Olympus_Mons"}, "InvalidTimeZone"),
        ({"schedule": "61 * * * *"}, "InvalidSchedule"),
    ],
)
async def test_a_bad_schedule_reads_ready_false_and_runs_nothing(
    spec: dict[str, Any], reason: str
) -> None:
    controller, api, _, clock = make(**spec)
    clock.now = T0 + 3600 * 5
    await controller.fire(KEY)
    assert [c[0] for c in api.calls] == ["status"]
    cond = api.statuses[-1]["conditions"][0]
    assert (cond["status"], cond["reason"]) == ("False", reason) and cond["message"]


def test_a_run_records_no_event_by_default_but_misses_and_skips_do() -> None:
    """A Created Event per run would be a write per run: only under ASYNCTASK_EVENTS=all."""
    from asynctask_operator.kube_events import wanted

    assert not wanted("failures", "Created") and wanted("all", "Created")
    assert wanted("failures", "Missed") and wanted("failures", "Skipped")
    assert not wanted("none", "Missed")


async def test_an_edit_of_the_timing_counts_slots_from_the_edit_not_as_missed() -> None:
    controller, api, _, clock = make(intervalSeconds=10)
    await controller.fire(KEY)
    clock.now = T0 + 95  # nine slots passed, then the interval is edited
    obj = {
        "metadata": {"namespace": "ns", "name": "every", "uid": "s-uid", "generation": 2,
                     "creationTimestamp": "2026-12-05T12:00:00Z"},
        "spec": {"intervalSeconds": 30, "template": {"spec": {"queue": "q"}}},
    }  # fmt: skip
    controller.schedule_seen(obj)
    await controller.fire(KEY)
    assert [c[0] for c in api.calls] == ["status", "status"]  # no run, nothing missed
    assert api.statuses[-1]["missedCount"] == 0
    assert api.statuses[-1]["nextScheduleTime"] == "2026-12-05T12:02:00Z"  # anchored: 120 s
    assert api.statuses[-1]["observedGeneration"] == 2


def stall_status_writes(api: FakeApi) -> asyncio.Event:
    """The schedules' status writes wait (sent, no answer) until the event returned is set."""
    release = asyncio.Event()
    write = api.write_schedule_status

    async def stuck(namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        await release.wait()
        await write(namespace, name, uid, status)

    api.write_schedule_status = stuck  # type: ignore[method-assign]
    return release


async def test_the_creates_of_many_due_slots_do_not_wait_for_the_bookkeeping() -> None:
    """40 schedules due at once while status writes do not return: every slot's task is
    created all the same. Before, a fire held its place (one of PARALLEL, then 32) through its
    status write and history delete, so the creates of a second's due slots queued behind
    the first ones' bookkeeping (slot → created lag p99 4.5 s with 200 schedules every
    10 s, bench/README.md)."""
    api, clock = FakeApi(), Clock()
    controller = ScheduleController(api, Events(), OperatorMetrics(), clock=clock)
    release = stall_status_writes(api)
    for i in range(40):
        controller.schedule_seen({
            "metadata": {"namespace": "ns", "name": f"s{i}", "uid": f"u{i}", "generation": 1,
                         "creationTimestamp": "2026-12-05T12:00:00Z"},
            "spec": {"template": {"spec": {"queue": "q"}}, "intervalSeconds": 10},
        })  # fmt: skip
    clock.now = T0 + 10.5  # every schedule's first slot is due
    controller.synced.set()
    running = asyncio.create_task(controller.run())
    try:
        await until(lambda: sum(1 for c in api.calls if c[0] == "create") == 40, within=10)
        assert not api.statuses  # no status write returned meanwhile
        release.set()
        await until(lambda: len(api.statuses) == 40, within=10)
    finally:
        release.set()
        running.cancel()
        await controller.stop()


async def test_stop_waits_until_the_fires_under_way_are_done() -> None:
    """A fire waiting on the apiserver when the operator stops is cancelled and awaited: once
    ``stop`` returns, no fire of this controller runs on (before, ``stop`` only requested
    the cancel, and the fire went on after the operator's stop, against a closed client)."""
    controller, api, _, clock = make(intervalSeconds=10)
    await controller.fire(KEY)  # the first status write (Ready)
    entered, ended = asyncio.Event(), asyncio.Event()

    async def hanging(namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        entered.set()
        try:
            await asyncio.Event().wait()  # an apiserver that does not answer
        finally:
            ended.set()
        raise AssertionError("never answered")

    api.create_task = hanging  # type: ignore[method-assign]
    clock.now = T0 + 10.5
    controller.synced.set()
    running = asyncio.create_task(controller.run())
    try:
        await asyncio.wait_for(entered.wait(), 10)
    finally:
        running.cancel()
    await controller.stop()
    assert ended.is_set(), "stop returned while a fire was still running"


async def test_a_slot_fires_while_its_previous_status_write_waits_one_write_covers_both() -> None:
    """A schedule's next slot does not wait for the status write of its previous run (before,
    a fire held its schedule through its bookkeeping, so a backlog of status writes delayed
    the next slot's create); the write under way is followed by one that records the newer
    run, and the history delete comes after the status that records its slot."""
    controller, api, _, clock = make(intervalSeconds=10, successfulTasksHistoryLimit=0)
    release = stall_status_writes(api)
    places = controller._books = asyncio.Semaphore(0)  # the bookkeeping's places all taken
    clock.now = T0 + 10.5
    controller.synced.set()
    running = asyncio.create_task(controller.run())
    try:
        await until(lambda: ("create", "every-1796472010") in api.calls, within=10)
        await asyncio.sleep(0.2)
        # a status write owed and waiting for a place: the next slot is due next, not
        # fires again and again meanwhile (each one "owing" the write already owed)
        assert controller._due.get(KEY) == T0 + 20
        places.release()
        finish(controller, api, "every-1796472010", "Succeeded")
        clock.now = T0 + 20.5
        controller._wakeup.set()  # the fake clock moved: the timer looks again
        await until(lambda: ("create", "every-1796472020") in api.calls, within=10)
        assert not api.statuses  # the first status write has not returned
        finish(controller, api, "every-1796472020", "Succeeded")
        release.set()
        await until(lambda: len(api.statuses) == 2, within=10)
        await until(lambda: ("delete", "every-1796472020") in api.calls, within=10)
    finally:
        release.set()
        running.cancel()
        await controller.stop()
    assert [s.get("lastScheduleTime") for s in api.statuses] == [
        "2026-12-05T12:00:10Z",
        "2026-12-05T12:00:20Z",
    ]
    assert [c for c in api.calls if c[0] != "create"] == [
        ("status", "every"),  # slot 1 recorded: its task may go (limit 0)...
        ("delete", "every-1796472010"),  # ...but not slot 2's, which it does not record
        ("status", "every"),
        ("delete", "every-1796472020"),
    ]


async def test_a_status_write_that_fails_keeps_its_tally_for_the_next() -> None:
    controller, api, _, clock = make(intervalSeconds=10)
    write = api.write_schedule_status
    failures = [Unavailable("apiserver restarting")]

    async def flaky(namespace: str, name: str, uid: str, status: dict[str, Any]) -> None:
        if failures:
            raise failures.pop()
        await write(namespace, name, uid, status)

    api.write_schedule_status = flaky  # type: ignore[method-assign]
    clock.now = T0 + 10.5
    with pytest.raises(Unavailable):
        await controller.fire(KEY)
    clock.now = T0 + 12.0
    await controller.fire(KEY)  # no slot due: the status owed is written
    assert [c[0] for c in api.calls] == ["create", "status"]
    assert api.statuses[-1]["lastScheduleTime"] == "2026-12-05T12:00:10Z"
    assert api.statuses[-1]["nextScheduleTime"] == "2026-12-05T12:00:20Z"


def test_history_deletes_only_the_runs_whose_slot_the_status_records() -> None:
    def run(second: int | None, phase: str = "Succeeded") -> Run:
        slot = None if second is None else datetime(2026, 12, 5, 12, 0, second, tzinfo=UTC)
        created = datetime(2026, 12, 5, 12, 0, second or 30, tzinfo=UTC)
        return Run(f"r{second}", f"u{second}", slot, created, phase, created)

    runs = [run(10), run(20), run(None), run(40, "Processing")]
    recorded = datetime(2026, 12, 5, 12, 0, 10, tzinfo=UTC)
    assert [r.name for r in beyond_history(runs, 0, 0, recorded)] == ["r10", "rNone"]
    assert [r.name for r in beyond_history(runs, 0, 0, None)] == ["rNone"]
    later = datetime(2026, 12, 5, 12, 0, 20, tzinfo=UTC)
    assert [r.name for r in beyond_history(runs, 0, 0, later)] == ["r10", "r20", "rNone"]
    assert [r.name for r in beyond_history(runs, 1, 0, later)] == ["r10", "r20"]


def test_tallies_merge_counts_and_keep_the_latest_times() -> None:
    early = datetime(2026, 12, 5, 12, 0, 10, tzinfo=UTC)
    late = datetime(2026, 12, 5, 12, 0, 20, tzinfo=UTC)
    merged = Tally(last_schedule=late, missed=2, skipped=1).merged(
        Tally(last_schedule=early, last_missed=early, missed=1)
    )
    assert merged == Tally(late, early, 3, None, 1)
