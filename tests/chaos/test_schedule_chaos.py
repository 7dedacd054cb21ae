"""Schedules under operator failures: 20 interval schedules (every 2-5 s) served by two
operator replicas with ``--peering``, while the leader is killed (SIGKILL: its Lease is
taken once it expires) or stopped (SIGTERM: it hands the Lease over) every 20-40 s and
started again as a standby.

Afterwards every slot of every schedule, from its creation to the latest slot its status
records, is either **run exactly once** (one task for it: by name, by its scheduled-time
annotation, and one successful create in the apiserver's audit log), or **missed and
recorded as missed** (``status.missedCount`` counts exactly the slots without a task), and a
missed slot lies in a window with no leader (from the signal to the new leader's
"leading as" plus SYNC seconds for its lists and first catch-up). Never twice.

No worker runs: a slot's run is its task's creation (the tasks stay Pending, so the history
limits delete none). Duration: ``ASYNCTASK_SCHEDULE_CHAOS_SECONDS`` (default 60).
"""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from asynctask_operator.status import parse_time
from testbed import ControlPlane, RabbitMQ, wait_until
from testbed._proc import free_port
from tests.e2e.system import PeeredOperators, Process

SECONDS = float(os.environ.get("ASYNCTASK_SCHEDULE_CHAOS_SECONDS", "60"))
#: The run, plus the failovers' takeovers and the settling after it (pytest-timeout's 300 s
#: is for tests of a fixed length; this one's is set by the variable above).
pytestmark = [pytest.mark.chaos, pytest.mark.timeout(SECONDS + 240)]
LEASE = "asynctask-schedules"
SCHEDULES = 20
#: After a new leader says it leads: its two lists and its first catch-up.
SYNC = 5.0
#: Before a signal: a slot due just then that the dying leader had not acted on yet.
BEFORE = 2.0


class Replica:
    def __init__(self, name: str, process: Process) -> None:
        self.name, self.process = name, process


class Cluster(PeeredOperators):
    def __init__(self, cp: ControlPlane, rmq: RabbitMQ, tmp: Path, stack: ExitStack) -> None:
        super().__init__(cp, rmq, tmp, stack, lease=LEASE, prefix="sched-chaos")
        self.replicas = [self._start(f"op-{i}") for i in range(2)]
        self.gaps: list[tuple[float, float]] = []  # (signal, new leader leads)

    def _start(self, name: str) -> Replica:
        process = self.process(name, free_port())
        # At the end a replica gets 2 s to stop, then SIGKILL: the test is over, and a
        # graceful stop of both replicas (up to 15 s each) was most of its teardown.
        self.stack.callback(process.stop, 2)
        return Replica(name, process)

    def leader(self) -> Replica:
        wait_until("a leader", lambda: self.holder().split("_")[0] in {"op-0", "op-1"}, 60)
        holder = self.holder()
        (leader,) = [r for r in self.replicas if holder.startswith(f"{r.name}_")]
        leader.process.wait_for_log(f"leading as {holder}", timeout=60)
        return leader

    def fail_over(self, kill: bool) -> None:
        """Kill or stop the leader, wait for the other to lead, start the first again."""
        old = self.leader()
        other = next(r for r in self.replicas if r is not old)
        leads = other.process.text().count("leading as")
        began = time.time()
        if kill:
            old.process.proc.send_signal(signal.SIGKILL)
            old.process.proc.wait()
        else:
            old.process.stop()
        other.process.wait_until(
            "it leads", lambda: other.process.text().count("leading as") > leads, 60
        )
        self.gaps.append((began, time.time()))
        old.process.restart()  # a standby now


@pytest.fixture
def cluster(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    with ExitStack() as stack:
        yield Cluster(control_plane, rabbitmq, tmp_path_factory.mktemp("sched-chaos"), stack)


def schedules(cp: ControlPlane, ns: str) -> list[dict[str, Any]]:
    out = cp.kubectl("get", "asynctaskschedules", "-n", ns, "-o", "json").stdout
    items: list[dict[str, Any]] = json.loads(out)["items"]
    return items


def test_every_slot_runs_once_or_is_recorded_missed_under_leader_failures(
    cluster: Cluster, control_plane: ControlPlane
) -> None:
    cp, ns = control_plane, cluster.namespace
    cluster.leader()
    for i in range(SCHEDULES):
        manifest = {
            "apiVersion": "asynctask.dev/v1alpha1", "kind": "AsyncTaskSchedule",
            "metadata": {"name": f"s{i:02d}", "namespace": ns},
            "spec": {"intervalSeconds": 2 + i % 4,
                     "template": {"spec": {"queue": "nobody-serves-this", "request": {}}}},
        }  # fmt: skip
        cp.kubectl("create", "-f", "-", input=json.dumps(manifest))
    rng = random.Random(21)
    end = time.time() + SECONDS
    kills = 0
    while time.time() + 20 < end:
        time.sleep(rng.uniform(20, 40) if time.time() + 40 < end else max(0, end - time.time()))
        if time.time() >= end:
            break
        kills += 1
        cluster.fail_over(kill=kills % 2 == 1)
    time.sleep(max(0.0, end - time.time()))
    for item in schedules(cp, ns):
        cp.kubectl("patch", "asynctaskschedule", item["metadata"]["name"], "-n", ns,
                   "--type=merge", "-p", '{"spec": {"suspend": true}}')  # fmt: skip
    wait_until(
        "every schedule's suspension written",
        lambda: all(
            s["status"].get("observedGeneration") == s["metadata"]["generation"]
            for s in schedules(cp, ns)
        ),
        60,
    )
    tasks = json.loads(cp.kubectl("get", "asynctasks", "-n", ns, "-o", "json").stdout)["items"]
    creates = Counter(
        w["name"] for w in cp.writes(ns)
        if (w["resource"], w["verb"], w["code"]) == ("asynctasks", "create", 201)
    )  # fmt: skip
    rows = check(schedules(cp, ns), tasks, creates, cluster.gaps)
    total = [sum(r[1] for r in rows), sum(r[2] for r in rows), sum(r[3] for r in rows),
             sum(r[4] for r in rows)]  # fmt: skip
    gaps = [round(b - a, 1) for a, b in cluster.gaps]
    print(f"\nschedule chaos: {SECONDS:.0f}s, {len(gaps)} failovers "
          f"({(kills + 1) // 2} SIGKILL), no-leader gaps (s) {gaps}")  # fmt: skip
    print("| schedule | slots | run once | missed | run twice |\n|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(str(x) for x in row) + " |")
    print("| all | " + " | ".join(str(x) for x in total) + " |")
    assert total[3] == 0 and total[0] == total[1] + total[2] and total[1] > 0


def check(
    items: list[dict[str, Any]],
    tasks: list[dict[str, Any]],
    creates: Counter[str],
    gaps: list[tuple[float, float]],
) -> list[tuple[str, int, int, int, int]]:
    """Per schedule: (name, slots, run once, missed, run twice), asserting the claims."""
    by_slot: dict[str, Counter[int]] = {}
    for task in tasks:
        meta = task["metadata"]
        owner = meta["labels"]["asynctask.dev/schedule"]
        slot = int(parse_time(meta["annotations"]["asynctask.dev/scheduled-time"]).timestamp())
        assert meta["name"] == f"{owner}-{slot}"
        by_slot.setdefault(owner, Counter())[slot] += 1
    rows = []
    for item in items:
        name, st = item["metadata"]["name"], item["status"]
        every = int(item["spec"]["intervalSeconds"])
        anchor = int(parse_time(item["metadata"]["creationTimestamp"]).timestamp())
        handled = [parse_time(st[k]).timestamp() for k in ("lastScheduleTime", "lastMissedTime")
                   if st.get(k)]  # fmt: skip
        last = int(max(handled))
        slots = list(range(anchor + every, last + 1, every))
        seen = by_slot.get(name, Counter())
        twice = [s for s in slots if seen[s] > 1 or creates[f"{name}-{s}"] > 1]
        once = [s for s in slots if seen[s] == 1 and creates[f"{name}-{s}"] == 1]
        missed = [s for s in slots if seen[s] == 0]
        assert not twice, (name, twice)
        assert len(missed) == st.get("missedCount", 0), (name, missed, st)
        for slot in missed:
            assert any(a - BEFORE <= slot <= b + SYNC for a, b in gaps), (name, slot, gaps)
        rows.append((name, len(slots), len(once), len(missed), len(twice)))
    return rows
