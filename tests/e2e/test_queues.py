"""AsyncQueue on the real control plane, RabbitMQ, operator and worker: the in-flight cap,
the rate limit, pause and resume, priority, fairness between namespaces, and an operator
SIGKILL while tasks are held.

The worker (tests/e2e/queue_app.py) records each run's start and end (its own wall
clock) per queue; each test has queues of its own (AsyncQueue is cluster-scoped: a fresh
name per test) and stops as soon as its claim is proven, deleting what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import config as k8s_config
from kubernetes.client import Configuration

from asynctask_operator.apiserver.apiclient import ApiClient
from asynctask_operator.status import parse_time
from testbed import ControlPlane, RabbitMQ, wait_until
from testbed._proc import free_port
from tests.e2e.system import Process, running, system_env, worker_ready
from tests.e2e.tasks import ready_messages, sample, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("operator")]

Spans = dict[str, tuple[float, float | None]]  # "ns/name" -> (start, end or None)


# helpers ----------------------------------------------------------------------------------


def fresh_queue(what: str) -> str:
    return f"qe-{what}-{uuid.uuid4().hex[:6]}"


@contextlib.contextmanager
def queue_worker(
    cp: ControlPlane, rmq: RabbitMQ, queues: list[str], concurrency: int, spans: Path
) -> Iterator[Process]:
    port = free_port()
    env = dict(system_env(cp, rmq), QUEUE_E2E_QUEUES=",".join(queues), QUEUE_E2E_SPANS=str(spans))
    args = [sys.executable, "-m", "asynctask_worker", "tests.e2e.queue_app:app"]
    args += ["--concurrency", str(concurrency), "--queues", ",".join(queues)]
    args += ["--metrics-port", str(port)]
    with running("queue-worker", args, env, spans, ready=worker_ready(port)) as proc:
        yield proc


@contextlib.contextmanager
def async_queue(cp: ControlPlane, name: str, spec: dict[str, Any]) -> Iterator[str]:
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncQueue",
        "metadata": {"name": name},
        "spec": spec,
    }
    cp.kubectl("create", "-f", "-", input=json.dumps(manifest))
    try:
        yield name
    finally:
        cp.kubectl("delete", "asyncqueue", name, "--wait=false", check=False)


def patch_queue(cp: ControlPlane, name: str, spec: dict[str, Any]) -> float:
    """Patch the AsyncQueue's spec; the time the apiserver had it (the call returned)."""
    body = json.dumps({"spec": spec})
    cp.kubectl("patch", "asyncqueue", name, "--type=merge", "-p", body)
    return time.time()


def queue_status(cp: ControlPlane, name: str) -> dict[str, Any]:
    obj = json.loads(cp.kubectl("get", "asyncqueue", name, "-o", "json").stdout)
    return dict(obj.get("status") or {})


def create_many(cp: ControlPlane, ns: str, items: list[tuple[str, dict[str, Any]]]) -> float:
    """Create the tasks (name, spec) in order, 8 at a time; the time the last was created."""
    cfg = Configuration()
    k8s_config.load_kube_config(config_file=str(cp.kubeconfig), client_configuration=cfg)  # type: ignore[no-untyped-call]

    async def run() -> None:
        client = ApiClient(cfg, connections=8)
        sem = asyncio.Semaphore(8)

        async def one(name: str, spec: dict[str, Any]) -> None:
            body = {
                "apiVersion": "asynctask.dev/v1alpha1",
                "kind": "AsyncTask",
                "metadata": {"name": name, "namespace": ns},
                "spec": spec,
            }
            async with sem:
                await client.request(
                    "POST", f"/apis/asynctask.dev/v1alpha1/namespaces/{ns}/asynctasks", body=body
                )

        try:
            await asyncio.gather(*(one(name, spec) for name, spec in items))
        finally:
            await client.close()

    asyncio.run(run())
    return time.time()


def tasks(cp: ControlPlane, ns: str) -> dict[str, dict[str, Any]]:
    out = cp.kubectl("get", "asynctasks", "-n", ns, "-o", "json", timeout=120).stdout
    return {obj["metadata"]["name"]: obj for obj in json.loads(out)["items"]}


def read_spans(folder: Path, queue: str) -> Spans:
    path = folder / f"{queue}.log"
    found: dict[str, list[float | None]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        what, at, who = line.split()
        entry = found.setdefault(who, [None, None])
        entry[0 if what == "start" else 1] = float(at)
    return {who: (float(s), e) for who, (s, e) in found.items() if s is not None}


def most_at_once(spans: Spans) -> int:
    """The most runs that overlapped at any moment."""
    edges = sorted(
        [(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values() if e],
        key=lambda edge: (edge[0], edge[1]),  # an end before a start at the same instant
    )
    now = peak = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def delete_rest(cp: ControlPlane, ns: str) -> None:
    """The claim is proven: delete what is left of the namespace's tasks, in one call."""
    cp.kubectl("delete", "asynctasks", "--all", "-n", ns, "--wait=false", timeout=120)


def started(spans_dir: Path, queue: str, count: int) -> bool:
    return len(read_spans(spans_dir, queue)) >= count


# the in-flight cap ------------------------------------------------------------------------


def test_the_in_flight_cap_is_never_exceeded(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, tmp_path: Path
) -> None:
    """Cap 5, 200 tasks of 200 ms on a worker that could run 10 at once: at most 5 ever
    overlap, and 5 did (the cap, not the worker, is what bounds them). A task lasts long
    enough for the next publish to reach the worker while the others run, also on a loaded
    machine (with 50 ms tasks a loaded run once saw at most 4 at once)."""
    queue = fresh_queue("cap")
    with (
        async_queue(control_plane, queue, {"maxInFlight": 5}),
        queue_worker(control_plane, rabbitmq, [queue], 10, tmp_path),
    ):
        names = [f"c-{i:03d}" for i in range(200)]
        items = [(n, {"queue": queue, "request": {"seconds": 0.2}}) for n in names]
        create_many(control_plane, namespace, items)
        wait_until(
            "all 200 ran",
            lambda: sum(1 for _, e in read_spans(tmp_path, queue).values() if e) == 200,
            120,
        )
        spans = read_spans(tmp_path, queue)
        assert len(spans) == 200  # each once
        assert most_at_once(spans) == 5, most_at_once(spans)
        objs = tasks(control_plane, namespace)
        held = [n for n, o in objs.items() if "reason" in (o.get("status") or {})]
        assert not held  # published tasks carry no held reason
        st = queue_status(control_plane, queue)
        assert st.get("inFlight", 0) <= 5


def queued_times(objs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """When the operator published each task (status.queuedTime, microseconds)."""
    return {
        name: parse_time(o["status"]["queuedTime"]).timestamp()
        for name, o in objs.items()
        if (o.get("status") or {}).get("queuedTime")
    }


def most_in_window(times: list[float], width: float) -> int:
    times = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


#: How many tasks the priority and fairness tests queue behind (the issue's 2,000 with
#: QUEUE_E2E_BACKLOG=2000; CI proves the same claim with fewer).
BACKLOG = int(os.environ.get("QUEUE_E2E_BACKLOG", "300"))
#: How long the watch may take to hand a new task to the operator on this loaded machine.
WATCH_SLACK = 1.0


# the rate limit ---------------------------------------------------------------------------


@pytest.mark.alone  # windows of 0.2 s: a second test process on the 2 cores bunches them
def test_the_start_rate_follows_the_limit_with_no_burst_above_the_burst(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, tmp_path: Path
) -> None:
    """10/s with a burst of 3, 60 tasks on a worker that could run 8 at once: after the
    burst, the start rate is 10/s within ±10%; no window of w seconds holds more than
    3 + 10·w publishes (+1 for the publish's own latency), nor more starts (+2: the
    delivery to the worker adds its jitter)."""
    queue, rate, burst, count = fresh_queue("rate"), 10.0, 3, 60
    with (
        async_queue(control_plane, queue, {"rateLimit": {"perSecond": rate, "burst": burst}}),
        queue_worker(control_plane, rabbitmq, [queue], 8, tmp_path),
    ):
        items = [
            (f"r-{i:03d}", {"queue": queue, "request": {"seconds": 0.01}}) for i in range(count)
        ]
        create_many(control_plane, namespace, items)
        wait_until(
            f"all {count} ran",
            lambda: sum(1 for _, e in read_spans(tmp_path, queue).values() if e) == count,
            60,
        )
        starts = sorted(s for s, _ in read_spans(tmp_path, queue).values())
        published = sorted(queued_times(tasks(control_plane, namespace)).values())
    measured = (count - burst) / (starts[-1] - starts[burst - 1])
    by_queue = (count - burst) / (published[-1] - published[burst - 1])
    windows = {
        w: (most_in_window(published, w), most_in_window(starts, w)) for w in (0.2, 0.5, 1, 2)
    }
    print(
        f"\nrate {rate}/s burst {burst}: started at {measured:.2f}/s, published at "
        f"{by_queue:.2f}/s; most in a window (published, started): {windows}"
    )
    assert rate * 0.9 <= measured <= rate * 1.1
    assert rate * 0.9 <= by_queue <= rate * 1.1
    for width, (pub, run) in windows.items():
        assert pub <= burst + rate * width + 1, (width, pub)
        assert run <= burst + rate * width + 2, (width, run)


# pause and resume -------------------------------------------------------------------------


def test_a_pause_stops_new_starts_within_a_second_and_a_resume_drains(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, tmp_path: Path
) -> None:
    queue, count = fresh_queue("pause"), 24
    with (
        async_queue(control_plane, queue, {"maxInFlight": 3}),
        queue_worker(control_plane, rabbitmq, [queue], 3, tmp_path),
    ):
        items = [
            (f"p-{i:03d}", {"queue": queue, "request": {"seconds": 0.5}}) for i in range(count)
        ]
        create_many(control_plane, namespace, items)
        wait_until("6 started", lambda: started(tmp_path, queue, 6), 60)
        asked = time.time()
        paused = patch_queue(control_plane, queue, {"paused": True})
        # Running ones finish; nothing new starts: the queue's own status says so (0 in
        # flight, the rest held), written after the pause took effect.
        wait_until(
            "the queue to report nothing in flight, all the rest held",
            lambda: (
                (st := queue_status(control_plane, queue)).get("inFlight") == 0
                and st.get("held", 0) > 0
                and any(c["type"] == "Paused" and c["status"] == "True" for c in st["conditions"])
            ),
            30,
        )
        spans = read_spans(tmp_path, queue)
        late = [s for s, _ in spans.values() if s > paused]
        print(
            f"\npause: asked at +0, applied by +{paused - asked:.3f}s; starts after it: "
            f"{[round(s - asked, 3) for s in late]}; {len(spans)} of {count} started"
        )
        assert all(s <= paused + 1.0 for s in late), late
        assert all(e is not None for _, e in spans.values())  # the running ones finished
        held_before = count - len(spans)
        assert held_before > 0
        create_many(control_plane, namespace, [("p-late", {"queue": queue})])
        wait_until(
            "the late task to be held as Paused",
            lambda: (
                (tasks(control_plane, namespace)["p-late"].get("status") or {}).get("reason")
                == "Paused"
            ),
            30,
        )
        resumed = patch_queue(control_plane, queue, {"paused": False})
        wait_until(
            "the held tasks to drain",
            lambda: sum(1 for _, e in read_spans(tmp_path, queue).values() if e) == count + 1,
            60,
        )
        first_after = min(s for s, _ in read_spans(tmp_path, queue).values() if s > paused + 1)
        print(f"resume: the first held task started {first_after - resumed:.3f}s after it")
        assert most_at_once(read_spans(tmp_path, queue)) <= 3
        events = control_plane.kubectl(
            "get",
            "events",
            "-n",
            "default",
            "--field-selector",
            f"involvedObject.name={queue}",
            "-o",
            "jsonpath={.items[*].reason}",
        ).stdout.split()
        assert {"Paused", "Resumed"} <= set(events), events


# priority ---------------------------------------------------------------------------------


def test_a_high_priority_task_starts_before_every_low_one_held_when_it_arrived(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, tmp_path: Path
) -> None:
    """BACKLOG low tasks of 50 ms on one worker that runs one at a time (the queue keeps
    at most 2 in flight: one running, one waiting in RabbitMQ), then 20 high ones: each
    high one starts before every low one that was still held when it arrived (published
    more than WATCH_SLACK after the highs were created)."""
    queue = fresh_queue("prio")
    with (
        async_queue(control_plane, queue, {"maxInFlight": 2}),
        queue_worker(control_plane, rabbitmq, [queue], 1, tmp_path),
    ):
        lows = [
            (f"low-{i:04d}", {"queue": queue, "request": {"seconds": 0.05}}) for i in range(BACKLOG)
        ]
        create_many(control_plane, namespace, lows)
        wait_until("10 low ones started", lambda: started(tmp_path, queue, 10), 60)
        highs = [
            (f"high-{i:02d}", {"queue": queue, "priority": 10, "request": {"seconds": 0.05}})
            for i in range(20)
        ]
        arrived = create_many(control_plane, namespace, highs)

        def highs_then_lows() -> bool:
            spans = read_spans(tmp_path, queue)
            ran = [s for who, (s, e) in spans.items() if "/high-" in who and e]
            later = [s for who, (s, _) in spans.items() if "/low-" in who and ran and s > max(ran)]
            return len(ran) == 20 and len(later) >= 3

        wait_until("the 20 high ones ran, then low ones again", highs_then_lows, 120)
        spans = read_spans(tmp_path, queue)
        published = queued_times(tasks(control_plane, namespace))
        delete_rest(control_plane, namespace)
    high_starts = [s for who, (s, _) in spans.items() if "/high-" in who]
    held_then = [
        spans[f"{namespace}/{name}"][0]
        for name, at in published.items()
        if name.startswith("low-") and at > arrived + WATCH_SLACK and f"{namespace}/{name}" in spans
    ]
    lows_between = sum(
        1 for who, (s, _) in spans.items() if "/low-" in who and arrived <= s <= max(high_starts)
    )
    print(
        f"\npriority: {BACKLOG} low, 20 high: the last high started "
        f"{max(high_starts) - arrived:.2f}s after they arrived; {lows_between} low ones "
        f"started meanwhile; {len(held_then)} low ones held then started later, "
        f"{BACKLOG - len([w for w in spans if '/low-' in w])} never started (deleted)"
    )
    assert len(high_starts) == 20 and held_then
    assert all(h < low for h in high_starts for low in held_then)
    assert lows_between <= 2 + 2  # the ones in flight when they arrived, and the watch's lag


# fairness ---------------------------------------------------------------------------------


def test_a_small_burst_of_one_namespace_is_served_alongside_anothers_backlog(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, namespace: str, tmp_path: Path
) -> None:
    """Namespace A queues BACKLOG tasks, then B 20 (same priority, weight 1 each): the two
    take turns, so B's 20 are done once about 20 of A's more ran (bound: 20 + the cap + 6
    for the watch's lag), while most of A's backlog still waits."""
    queue = fresh_queue("fair")
    other = f"t-{uuid.uuid4().hex[:8]}"
    control_plane.kubectl("create", "namespace", other)
    try:
        with (
            async_queue(control_plane, queue, {"maxInFlight": 2}),
            queue_worker(control_plane, rabbitmq, [queue], 2, tmp_path),
        ):
            mine = [
                (f"a-{i:04d}", {"queue": queue, "request": {"seconds": 0.05}})
                for i in range(BACKLOG)
            ]
            create_many(control_plane, namespace, mine)
            wait_until("10 of A started", lambda: started(tmp_path, queue, 10), 60)
            arrived = time.time()
            create_many(
                control_plane,
                other,
                [(f"b-{i:02d}", {"queue": queue, "request": {"seconds": 0.05}}) for i in range(20)],
            )
            wait_until(
                "B's 20 ran",
                lambda: (
                    sum(
                        1
                        for who, (_, e) in read_spans(tmp_path, queue).items()
                        if who.startswith(f"{other}/") and e
                    )
                    == 20
                ),
                120,
            )
            spans = read_spans(tmp_path, queue)
            delete_rest(control_plane, namespace)
            delete_rest(control_plane, other)
    finally:
        control_plane.kubectl("delete", "namespace", other, "--wait=false", check=False)
    b_done = max(e for who, (_, e) in spans.items() if who.startswith(f"{other}/") and e)
    a_meanwhile = sum(
        1
        for who, (s, _) in spans.items()
        if who.startswith(f"{namespace}/") and arrived <= s <= b_done
    )
    a_waiting = BACKLOG - sum(1 for who in spans if who.startswith(f"{namespace}/"))
    print(
        f"\nfairness: B's 20 done {b_done - arrived:.2f}s after they arrived; {a_meanwhile} of "
        f"A's started meanwhile; {a_waiting} of A's {BACKLOG} still waiting then"
    )
    assert a_meanwhile <= 20 + 2 + 6
    assert a_waiting >= BACKLOG // 2


# an operator SIGKILL while tasks are held -------------------------------------------------


def test_an_operator_killed_while_tasks_are_held_keeps_their_count_and_order(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    namespace: str,
    tmp_path: Path,
    operator: Process,
) -> None:
    """KILL_HELD tasks of mixed priority held by a paused queue; the operator is killed
    (SIGKILL) and started again: it holds the same count (its metric, from its own
    rebuilt set), published none, and once resumed with one slot admits them in the same
    order (priority, then creation order), each once."""
    queue, count = fresh_queue("kill"), int(os.environ.get("QUEUE_E2E_KILL_HELD", "300"))
    with async_queue(control_plane, queue, {"paused": True, "maxInFlight": 1}):
        items = [(f"k-{i:05d}", {"queue": queue, "priority": i % 5}) for i in range(count)]
        create_many(control_plane, namespace, items)
        wait_until(
            f"all {count} held",
            lambda: (
                sum(
                    1
                    for o in tasks(control_plane, namespace).values()
                    if (o.get("status") or {}).get("reason") == "Paused"
                )
                == count
            ),
            120 + count / 50,
        )
        operator.proc.send_signal(signal.SIGKILL)
        operator.proc.wait()
        killed = time.time()
        operator.restart()
        operator.wait_ready(60)
        wait_until(
            "the restarted operator to hold them all again",
            lambda: (
                sample(
                    scrape(operator.env),
                    "asynctask_operator_queue_held",
                    queue=queue,
                    reason="Paused",
                )
                == count
            ),
            90 + count / 200,
        )
        print(f"\nkill: {count} held again {time.time() - killed:.1f}s after the SIGKILL")
        assert ready_messages(rabbitmq, queue) == 0  # nothing published
        objs = tasks(control_plane, namespace)
        expected = sorted(
            objs,
            key=lambda n: (
                -objs[n]["spec"]["priority"],
                objs[n]["metadata"]["creationTimestamp"],
                n,
            ),
        )
        with queue_worker(control_plane, rabbitmq, [queue], 1, tmp_path):
            patch_queue(control_plane, queue, {"paused": False})
            wait_until(
                "30 ran",
                lambda: sum(1 for _, e in read_spans(tmp_path, queue).values() if e) >= 30,
                60,
            )
            spans = read_spans(tmp_path, queue)
            delete_rest(control_plane, namespace)
    order = [who.split("/")[1] for who, _ in sorted(spans.items(), key=lambda kv: kv[1][0])]
    assert order[:30] == expected[:30]
    assert len(set(order)) == len(order)  # each once
