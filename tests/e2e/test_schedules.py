"""AsyncTaskSchedule on the real control plane and RabbitMQ, with the shared operator and
the lifecycle worker: interval schedules under each concurrency policy, suspend and resume,
an edited template, garbage collection of a deleted schedule's tasks, bad schedules, an
operator restart that runs no slot twice, and tasks never created before their slot.

Bounds: never early is exact (a task's handler starts, by its own wall clock, at or after
its slot, and the slot is the annotation's whole second); on time is within ON_TIME of the
slot on this shared 2-core machine. Intervals are 1-3 s to keep the file short.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from asynctask_operator.status import parse_time
from testbed import ControlPlane, wait_until
from tests.e2e.system import Process
from tests.e2e.tasks import Counted

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator", "lifecycle_worker")]
#: How late a slot's task may start (the handler's clock) after the slot time.
ON_TIME = 5.0
LABEL = "asynctask.dev/schedule"


def create_schedule(cp: ControlPlane, ns: str, name: str, **spec: Any) -> dict[str, Any]:
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncTaskSchedule",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec,
    }
    out = cp.kubectl("create", "-f", "-", "-o", "json", input=json.dumps(manifest)).stdout
    created: dict[str, Any] = json.loads(out)
    return created


def schedule(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = json.loads(
        cp.kubectl("get", "asynctaskschedule", name, "-n", ns, "-o", "json").stdout
    )
    return obj


def patch(cp: ControlPlane, ns: str, name: str, spec: dict[str, Any]) -> None:
    cp.kubectl(
        "patch", "asynctaskschedule", name, "-n", ns, "--type=merge", "-p",
        json.dumps({"spec": spec}),
    )  # fmt: skip


def tasks_of(cp: ControlPlane, ns: str, name: str) -> list[dict[str, Any]]:
    out = cp.kubectl("get", "asynctasks", "-n", ns, "-l", f"{LABEL}={name}", "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return sorted(items, key=lambda t: slot_of(t))


def slot_of(task: dict[str, Any]) -> float:
    return parse_time(task["metadata"]["annotations"]["asynctask.dev/scheduled-time"]).timestamp()


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == "Ready"), {})


def starts(markers: Path, ns: str, name: str) -> list[float]:
    path = markers / f"{ns}.{name}.starts"
    return [float(x) for x in path.read_text().split()] if path.exists() else []


def delete_schedule(cp: ControlPlane, ns: str, name: str) -> None:
    cp.kubectl("delete", "asynctaskschedule", name, "-n", ns, "--wait=false")


def test_an_interval_schedule_creates_one_owned_task_per_slot_never_early_and_on_time(
    control_plane: ControlPlane, namespace: str, markers: Path
) -> None:
    cp = control_plane
    watch = subprocess.Popen(
        [f"{cp.bin_dir}/kubectl", "--kubeconfig", str(cp.kubeconfig), "get",
         "asynctaskschedules", "-n", namespace, "-w"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    sched = create_schedule(
        cp,
        namespace,
        "every2",
        intervalSeconds=2,
        template={"metadata": {"labels": {"team": "a"}}, "spec": {"queue": "stamp", "request": {}}},
        successfulTasksHistoryLimit=2,
    )
    wait_until("4 slots run", lambda: len(starts_of_all(cp, markers, namespace)) >= 4, 40)
    watch.terminate()
    transcript = watch.communicate(timeout=10)[0]
    print(f"\n$ kubectl get asynctaskschedules -w\n{transcript}")
    anchor = parse_time(sched["metadata"]["creationTimestamp"]).timestamp()
    for task in tasks_of(cp, namespace, "every2"):
        meta, slot = task["metadata"], slot_of(task)
        assert meta["name"] == f"every2-{int(slot)}"
        assert (slot - anchor) % 2 == 0 and slot > anchor  # anchored to the creation
        assert meta["labels"] == {LABEL: "every2", "team": "a"}
        (owner,) = meta["ownerReferences"]
        assert owner["kind"] == "AsyncTaskSchedule" and owner["controller"] is True
        assert owner["uid"] == sched["metadata"]["uid"]
        assert parse_time(meta["creationTimestamp"]).timestamp() >= slot
    lates = []
    for name, ran in starts_of_all(cp, markers, namespace).items():
        slot = float(name.rsplit("-", 1)[1])
        assert len(ran) == 1, (name, ran)  # each slot's task ran once
        assert ran[0] >= slot, (name, ran[0], slot)  # never early
        lates.append(ran[0] - slot)
    print(f"start lag after the slot (handler clock): max {max(lates):.3f}s")
    assert max(lates) <= ON_TIME
    st = schedule(cp, namespace, "every2")["status"]
    assert ready(schedule(cp, namespace, "every2"))["status"] == "True"
    assert parse_time(st["nextScheduleTime"]) > parse_time(st["lastScheduleTime"])
    assert st.get("missedCount", 0) == 0
    # history: a run deletes the succeeded tasks beyond the 2 newest it knows of, so the
    # oldest runs go, and at any moment at most 4 succeeded exist: the 2 kept, one that
    # finished since the latest run, and one whose end the latest run had not seen yet (a
    # state of exactly 2 lasts only until the newest task ends, too short to poll for).
    oldest = sorted(starts_of_all(cp, markers, namespace), key=lambda n: int(n.rsplit("-", 1)[1]))
    gone = set(oldest[:2])
    wait_until(
        "the history limit to delete the two oldest runs",
        lambda: not gone & {t["metadata"]["name"] for t in tasks_of(cp, namespace, "every2")},
        20,
    )
    succeeded = [t for t in tasks_of(cp, namespace, "every2")
                 if (t.get("status") or {}).get("phase") == "Succeeded"]  # fmt: skip
    assert len(succeeded) <= 4, [t["metadata"]["name"] for t in succeeded]
    delete_schedule(cp, namespace, "every2")
    writes = cp.writes(namespace)
    runs = sum(1 for w in writes if w["resource"] == "asynctasks" and w["verb"] == "create")
    other = [
        w
        for w in writes
        if (w["resource"], w["subresource"]) == ("asynctaskschedules", "status")
        or (w["resource"], w["verb"]) == ("asynctasks", "delete")
        or (w["resource"], w["verb"]) == ("events", "create")
    ]
    print(f"operator writes per run besides the create: {len(other) / runs:.2f} ({runs} runs)")
    assert len(other) <= 2 * runs + 1  # + the first status write of a new schedule


def starts_of_all(cp: ControlPlane, markers: Path, ns: str) -> dict[str, list[float]]:
    return {
        p.name.split(".")[1]: starts(markers, ns, p.name.split(".")[1])
        for p in markers.glob(f"{ns}.*.starts")
    }


def test_forbid_skips_while_a_task_is_active(
    control_plane: ControlPlane, namespace: str, operator: Process
) -> None:
    cp = control_plane
    counted = Counted(operator.env)
    create_schedule(
        cp, namespace, "forbid", intervalSeconds=1, concurrencyPolicy="Forbid",
        template={"spec": {"queue": "sleepy", "request": {"seconds": 30}}},
    )  # fmt: skip
    wait_until(
        "slots skipped",
        lambda: schedule(cp, namespace, "forbid")["status"].get("skippedCount", 0) >= 2,
        30,
    )
    tasks = tasks_of(cp, namespace, "forbid")
    delete_schedule(cp, namespace, "forbid")
    assert len(tasks) == 1, [t["metadata"]["name"] for t in tasks]
    # the operator's metrics: runs by outcome, and the lag of each start
    assert counted.delta("asynctask_operator_schedule_runs_total", outcome="skipped") >= 2
    assert counted.delta("asynctask_operator_schedule_runs_total", outcome="started") >= 1
    assert counted.delta("asynctask_operator_schedule_lag_seconds_count") >= 1


def test_replace_cancels_the_active_task_and_creates_the_next(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    create_schedule(
        cp, namespace, "replace", intervalSeconds=3, concurrencyPolicy="Replace",
        failedTasksHistoryLimit=5,
        template={"spec": {"queue": "sleepy", "request": {"seconds": 60}}},
    )  # fmt: skip
    wait_until("two tasks", lambda: len(tasks_of(cp, namespace, "replace")) >= 2, 30)
    first = tasks_of(cp, namespace, "replace")[0]
    assert first["spec"].get("cancel") is True
    name = first["metadata"]["name"]

    def phase_of_first() -> str:
        found = [t for t in tasks_of(cp, namespace, "replace") if t["metadata"]["name"] == name]
        return str((found[0].get("status") or {}).get("phase")) if found else "gone"

    wait_until("the first task cancelled", lambda: phase_of_first() == "Cancelled", 30)
    delete_schedule(cp, namespace, "replace")


def test_allow_runs_overlapping_tasks(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    create_schedule(
        cp, namespace, "allow", intervalSeconds=1,
        template={"spec": {"queue": "sleepy", "request": {"seconds": 20}}},
    )  # fmt: skip
    wait_until(
        "3 tasks active at once",
        lambda: schedule(cp, namespace, "allow")["status"].get("activeCount", 0) >= 3,
        30,
    )
    delete_schedule(cp, namespace, "allow")


def test_suspend_and_resume(control_plane: ControlPlane, namespace: str) -> None:
    cp = control_plane
    create_schedule(
        cp, namespace, "pause", intervalSeconds=1, suspend=True,
        template={"spec": {"queue": "echo"}},
    )  # fmt: skip
    wait_until(
        "Ready", lambda: ready(schedule(cp, namespace, "pause")).get("reason") == "Suspended", 20
    )
    time.sleep(2.5)  # two slots pass while suspended
    assert tasks_of(cp, namespace, "pause") == []
    patch(cp, namespace, "pause", {"suspend": False})
    wait_until("tasks after resuming", lambda: len(tasks_of(cp, namespace, "pause")) >= 2, 20)
    patch(cp, namespace, "pause", {"suspend": True})
    wait_until(
        "suspended again",
        lambda: ready(schedule(cp, namespace, "pause")).get("reason") == "Suspended",
        20,
    )
    count = len(tasks_of(cp, namespace, "pause"))
    time.sleep(2.5)
    assert len(tasks_of(cp, namespace, "pause")) == count
    assert schedule(cp, namespace, "pause")["status"].get("missedCount", 0) == 0
    delete_schedule(cp, namespace, "pause")


def test_an_edited_template_takes_effect_at_the_next_slot(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    create_schedule(
        cp, namespace, "edit", intervalSeconds=1,
        template={"spec": {"queue": "echo", "request": {"v": 1}}},
    )  # fmt: skip
    wait_until("a first task", lambda: tasks_of(cp, namespace, "edit"), 20)
    patch(cp, namespace, "edit", {"template": {"spec": {"queue": "echo", "request": {"v": 2}}}})
    edited = time.time()
    wait_until(
        "a task of the new template",
        lambda: any(t["spec"]["request"] == {"v": 2} for t in tasks_of(cp, namespace, "edit")),
        20,
    )
    delete_schedule(cp, namespace, "edit")
    for task in tasks_of(cp, namespace, "edit"):
        if slot_of(task) > edited + 2:  # a slot well after the edit was seen
            assert task["spec"]["request"] == {"v": 2}


def test_deleting_the_schedule_collects_its_tasks(
    control_plane: ControlPlane, namespace: str
) -> None:
    cp = control_plane
    create_schedule(cp, namespace, "gc", intervalSeconds=1, template={"spec": {"queue": "echo"}})
    wait_until("tasks", lambda: len(tasks_of(cp, namespace, "gc")) >= 2, 20)
    cp.kubectl("delete", "asynctaskschedule", "gc", "-n", namespace)
    wait_until("its tasks collected", lambda: tasks_of(cp, namespace, "gc") == [], 60)


def test_bad_schedules_are_refused_or_read_not_ready(
    control_plane: ControlPlane, namespace: str, operator: Process
) -> None:
    cp = control_plane
    template = {"spec": {"queue": "echo"}}
    refused: dict[str, dict[str, Any]] = {
        "both": {"schedule": "@hourly", "intervalSeconds": 5},
        "zero": {"intervalSeconds": 0},
        "fields": {"schedule": "* * *"},
        "tz-interval": {"intervalSeconds": 5, "timeZone": "UTC"},
    }
    for name, spec in refused.items():
        manifest = {
            "apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTaskSchedule",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {**spec, "template": template},
        }  # fmt: skip
        done = cp.kubectl("create", "-f", "-", input=json.dumps(manifest), check=False)
        assert done.returncode != 0 and "is invalid" in done.stderr, (name, done.stderr)
    create_schedule(cp, namespace, "mars", schedule="0 3 * * *", timeZone="Mars/Olympus_Mons",
                    template=template)  # fmt: skip
    create_schedule(cp, namespace, "minute61", schedule="61 * * * *", template=template)
    for name, reason in (("mars", "InvalidTimeZone"), ("minute61", "InvalidSchedule")):
        cond = ready_within(cp, namespace, name)
        assert (cond["status"], cond["reason"]) == ("False", reason), cond
        assert cond["message"]
    assert operator.alive()
    # fixed: Ready again
    patch(cp, namespace, "mars", {"timeZone": "Europe/Berlin"})
    wait_until(
        "Ready after the fix",
        lambda: ready(schedule(cp, namespace, "mars")).get("status") == "True",
        20,
    )


def test_an_operator_restart_runs_no_slot_twice_and_records_the_missed_ones(
    control_plane: ControlPlane, namespace: str, operator: Process, markers: Path
) -> None:
    cp = control_plane
    create_schedule(
        cp, namespace, "restart", intervalSeconds=1, successfulTasksHistoryLimit=1000,
        template={"spec": {"queue": "stamp", "request": {}}},
    )  # fmt: skip
    wait_until("a few runs", lambda: len(tasks_of(cp, namespace, "restart")) >= 3, 20)
    operator.stop()  # SIGTERM; down for about 3 slots
    time.sleep(3)
    operator.restart()
    operator.wait_ready()
    wait_until("runs after the restart", lambda: len(tasks_of(cp, namespace, "restart")) >= 8, 60)
    patch(cp, namespace, "restart", {"suspend": True})  # a status that covers every slot
    wait_until(
        "suspended",
        lambda: ready(schedule(cp, namespace, "restart")).get("reason") == "Suspended",
        20,
    )
    st = schedule(cp, namespace, "restart")["status"]
    slots = [int(slot_of(t)) for t in tasks_of(cp, namespace, "restart")]
    for name, ran in starts_of_all(cp, markers, namespace).items():
        assert len(ran) == 1, (name, ran)  # no slot's task ran twice
    gaps = sum(b - a - 1 for a, b in itertools.pairwise(slots))
    print(f"\nrestart: {len(slots)} slots run, {gaps} missed, status {st}")
    # every slot between the first and the last run either ran or is counted missed
    assert gaps == st.get("missedCount", 0) and gaps >= 1
    delete_schedule(cp, namespace, "restart")


def ready_within(cp: ControlPlane, ns: str, name: str) -> dict[str, Any]:
    """The Ready condition, once the operator has written one."""
    wait_until(f"{name} has a Ready condition", lambda: ready(schedule(cp, ns, name)), 20)
    return ready(schedule(cp, ns, name))
