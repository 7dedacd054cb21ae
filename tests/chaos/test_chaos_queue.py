"""The chaos suite's first scenario again (workers SIGKILLed again and again, the operator
SIGKILLed once) with an AsyncQueue on its queue: an in-flight cap and a rate limit.

Besides the suite's checks (nothing lost, no terminal phase changed, re-runs explained by
the faults), the handlers' own spans show the cap held: at no moment did more executions
overlap than the cap plus the task messages the operator kill may have put in the queue
twice. An execution a worker kill cut short holds its slot until the task runs again
(its redelivery), as the operator counts it: in flight until terminal.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.chaos.system import QUEUE, ChaosSystem
from tests.chaos.test_chaos import check

pytestmark = pytest.mark.chaos

TASKS = 120
CAP = 3  # the four workers (concurrency 1) could run 4 at once: the cap binds
RATE = {"perSecond": 20, "burst": 5}


@pytest.fixture(scope="module")
def policy(system: ChaosSystem) -> Iterator[dict[str, object]]:
    spec: dict[str, object] = {"maxInFlight": CAP, "rateLimit": RATE}
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncQueue",
        "metadata": {"name": QUEUE},
        "spec": spec,
    }
    system.cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))
    yield spec
    system.cp.kubectl("delete", "asyncqueue", QUEUE, "--wait=false", check=False)


def overlap(system: ChaosSystem) -> int:
    """The most executions of this scenario running at once, from the handlers' spans;
    one cut short ends where its task's next execution starts."""
    starts: dict[str, list[float]] = {}
    ends: dict[str, list[float]] = {}
    for path in system.executions_dir.glob("*.spans"):
        for line in path.read_text().splitlines():
            what, at, uid = line.split()
            if uid in system.uids:
                (starts if what == "start" else ends).setdefault(uid, []).append(float(at))
    edges: list[tuple[float, int]] = []
    for uid, begun in starts.items():
        begun.sort()
        done = sorted(ends.get(uid, []))
        for k, start in enumerate(begun):
            finished = [e for e in done if e >= start]
            later = begun[k + 1] if k + 1 < len(begun) else None
            end = min([*finished[:1], *([later] if later is not None else [])], default=None)
            assert end is not None, f"{uid}: an execution that never ended nor ran again"
            edges += [(start, 1), (end, -1)]
    now = peak = 0
    for _, step in sorted(edges, key=lambda e: (e[0], e[1])):
        now += step
        peak = max(peak, now)
    return peak


def unrecorded(system: ChaosSystem) -> int:
    """Task messages an operator killed now may have published without recording it (its
    successor publishes them again): tasks with no status at all, and of the held ones
    (no messageId) at most the cap, since a held task is published only once admitted into
    one of the CAP in-flight slots."""
    out = system.cp.kubectl("get", "asynctasks", "-n", system.namespace, "-o", "json").stdout
    new = held = 0
    for obj in json.loads(out)["items"]:
        st = obj.get("status") or {}
        if not st.get("phase"):
            new += 1
        elif st.get("reason") and not st.get("messageId"):
            held += 1
    return new + min(held, CAP)


def test_workers_and_the_operator_killed_under_a_cap_and_a_rate_limit(
    system: ChaosSystem, policy: dict[str, object]
) -> None:
    figures = system.begin(f"worker SIGKILLs + operator SIGKILL under AsyncQueue {policy}")
    system.submit(TASKS, sleep=0.5)  # 20 s of work under the cap: room for the faults
    for k, share in enumerate((0.1, 0.2, 0.3, 0.4)):
        system.wait_executed(int(TASKS * share))
        if not system.kill_busy_worker():
            break
        figures.worker_kills += 1
        if k == 0:
            maybe = unrecorded(system)
            system.kill_operator()  # its own count takes every held task for unrecorded
            figures.republished += maybe
            figures.operator_restarts += 1
    system.wait_terminal(TASKS)
    figures.interrupted = figures.worker_kills
    figures = system.finish(figures)
    check(figures)
    peak = overlap(system)
    print(
        f"[chaos] most executions at once: {peak} (cap {CAP}, republished<={figures.republished})"
    )
    assert figures.worker_kills >= 2 and figures.operator_restarts == 1, figures
    assert peak <= CAP + figures.republished, (peak, figures)
