"""AsyncTaskSchedule at scale: N schedules, each every --interval seconds, on the real stack
(control plane, RabbitMQ, the operator, one worker running no-op tasks).

Reports, from the apiserver's audit log (its own clock, microseconds):
* start lag: slot time → the task's create, and slot time → its first status write (the
  record of its publish, or its end carrying that record), p50 / p99 / max; the create's lag
  split at ``requestReceivedTimestamp``: the way to the apiserver (the operator's timer,
  event loop and connection pool) and the apiserver's serving of it;
* slot time → the handler's start: the task's ``status.startTime`` (the worker's clock, the
  same machine's, microseconds), read by a watch of the namespace, since a short task's
  start is folded into its end and has no write of its own;
* API writes per run besides the task's create: the schedules' status writes, the history
  deletes and Events, over the runs;
* starvation: the fewest runs any schedule had, against the slots in the window;
* a timeline (``--timeline``): per 5 s of slots, the runs and their lag (slot → create
  received, p50 / p99 / max), to tell a tail spread over the run from one made of bursts;
* operator RSS per schedule: the schedules created suspended (no task yet) against the
  operator with none;
* the operator's own ``schedule_lag`` histogram (its clock, slot → create answered).

An interval schedule's slots count from its creation time (1 s resolution), so schedules
created in the same second are all due in the same second (the default, the worst case).
``--spread`` creates them evenly over one interval instead, as schedules created at
different times are (a second line, never instead of the bunched one). ``--profile FILE``
records the operator with py-spy over the measured window (``profiler.py``).

    PYTHONPATH=hack:bench .venv/bin/python bench/schedules.py \
        --schedules 1000 --interval 10 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import threading
import time
from datetime import datetime
from typing import Any

import profiler
from kubeapi import GROUP_VERSION, KubeApi
from stack import REPO, Stack, _stamp, load, rss_bytes

NS = "bench"


def schedule(name: str, interval: int, suspend: bool) -> dict[str, Any]:
    return {
        "apiVersion": GROUP_VERSION,
        "kind": "AsyncTaskSchedule",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "intervalSeconds": interval,
            "suspend": suspend,
            "successfulTasksHistoryLimit": 1,
            "failedTasksHistoryLimit": 1,
            "template": {"spec": {"queue": "hello", "request": {"steps": 1, "step_seconds": 0}}},
        },
    }


async def create_schedules(stack: Stack, n: int, interval: int, spread: bool) -> None:
    """All at once, or (``spread``) the i-th at i/n of an interval after the first."""
    url_base = f"/apis/{GROUP_VERSION}/namespaces/{NS}/asynctaskschedules"
    async with KubeApi(stack.cp.kubeconfig) as api:
        limit = asyncio.Semaphore(32)
        start = time.monotonic()

        async def one(i: int) -> None:
            if spread:
                await asyncio.sleep(max(0.0, start + i * interval / n - time.monotonic()))
            async with limit:
                body = schedule(f"s{i:04d}", interval, True)
                await api._send("POST", api.server + url_base, body)

        await asyncio.gather(*(one(i) for i in range(n)))


def lag_histogram(stack: Stack) -> str:
    """The operator's ``schedule_lag`` histogram: slot → its create answered, by its clock."""
    import urllib.request

    url = f"http://127.0.0.1:{stack.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        text = resp.read().decode()
    name = "asynctask_operator_schedule_lag_seconds_bucket"
    buckets = [
        (line.split('le="')[1].split('"')[0], float(line.split()[-1]))
        for line in text.splitlines()
        if line.startswith(name)
    ]
    total = buckets[-1][1] if buckets else 0.0
    return ", ".join(f"≤{le} s: {n / total:.1%}" for le, n in buckets[:-1] if total) + (
        f" (of {total:.0f}, since the start)"
    )


async def resume_all(stack: Stack, n: int) -> float:
    url_base = f"/apis/{GROUP_VERSION}/namespaces/{NS}/asynctaskschedules"
    async with KubeApi(stack.cp.kubeconfig) as api:
        limit = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with limit:
                await api._send(
                    "PATCH", f"{api.server}{url_base}/s{i:04d}", {"spec": {"suspend": False}},
                    "application/merge-patch+json",
                )  # fmt: skip

        start = time.time()
        await asyncio.gather(*(one(i) for i in range(n)))
        return start


def pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.0f} ms"


class Starts(threading.Thread):
    """Each task's ``status.startTime`` (epoch seconds), as a watch of the namespace sees
    it, on a thread and event loop of its own while the benchmark sleeps."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self._stack = stack
        self.at: dict[str, float] = {}

    def run(self) -> None:
        asyncio.run(self._follow())

    async def _follow(self) -> None:
        async with KubeApi(self._stack.cp.kubeconfig, 2) as api:
            async for obj in api.watch(NS):
                start = (obj.get("status") or {}).get("startTime")
                name = obj["metadata"]["name"]
                if start and name not in self.at:
                    self.at[name] = datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()


def audit(stack: Stack, since: float, until: float) -> dict[str, Any]:
    """Creates and status writes of the tasks; the other writes made in [since, until]
    (after every schedule's resume was written: those first status writes are not runs')."""
    created: dict[str, float] = {}
    received: dict[str, float] = {}  # when the apiserver received the create
    writes: dict[str, list[float]] = collections.defaultdict(list)
    other: collections.Counter[str] = collections.Counter()
    for line in stack.cp.audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if ref.get("namespace") != NS or event.get("stage") != "ResponseComplete":
            continue
        at, verb, resource = _stamp(event["stageTimestamp"]), event["verb"], ref.get("resource")
        if resource == "asynctasks" and verb == "create":
            if event.get("responseStatus", {}).get("code") == 201:
                created[ref["name"]] = at
                received[ref["name"]] = _stamp(event["requestReceivedTimestamp"])
        elif resource == "asynctasks" and ref.get("subresource") == "status":
            writes[ref["name"]].append(at)
        elif not since <= at <= until:
            continue
        elif (resource, ref.get("subresource"), verb) == ("asynctaskschedules", "status", "patch"):
            other["schedule status"] += 1
        elif (resource, verb) in (("asynctasks", "delete"), ("events", "create")):
            other[f"{verb} {resource}"] += 1
    return {"created": created, "received": received, "writes": writes, "other": other}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=1000)
    parser.add_argument("--interval", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=16, help="worker concurrency")
    parser.add_argument("--spread", action="store_true", help="anchors over one interval")
    parser.add_argument("--profile", default="", help="py-spy raw output of the operator")
    parser.add_argument("--timeline", action="store_true", help="the lag per 5 s of slots")
    args = parser.parse_args()
    with Stack() as stack:
        stack.cp.install_crd(REPO / "deploy/crds/asynctask.dev_asynctaskschedules.yaml")
        op = stack.start_operator()
        stack.start_worker(args.concurrency)
        time.sleep(5)
        base = rss_bytes(op.pid)
        asyncio.run(create_schedules(stack, args.schedules, args.interval, args.spread))
        time.sleep(10)  # every schedule seen and its first status written
        held = rss_bytes(op.pid)
        per = (held - base) / args.schedules
        print(f"operator RSS: {base / 2**20:.1f} MiB with none, {held / 2**20:.1f} MiB with "
              f"{args.schedules} suspended: {per / 1024:.1f} KiB a schedule; {load()}",
              flush=True)  # fmt: skip
        resumed = asyncio.run(resume_all(stack, args.schedules))
        print(f"resumed {args.schedules} schedules in {time.time() - resumed:.1f}s; running "
              f"{args.seconds:.0f}s", flush=True)  # fmt: skip
        since = time.time() + 5  # the resumes' own status writes are done by then
        starts = Starts(stack)
        starts.start()
        spy = profiler.start(stack, args.profile)
        time.sleep(args.seconds)
        end = time.time()
        profiler.stop(spy)
        peak = rss_bytes(op.pid, "VmHWM")
        time.sleep(args.interval + 5)  # the last runs' tasks start and end
        histogram = lag_histogram(stack)
        found = audit(stack, since, end)
    window = [(n, t) for n, t in found["created"].items() if float(n.rsplit("-", 1)[1]) <= end]
    counted = [n for n, _ in window if float(n.rsplit("-", 1)[1]) >= since]
    lag_create, lag_start, lag_received, serve, lag_write = [], [], [], [], []
    per_schedule: collections.Counter[str] = collections.Counter()
    for name, at in window:
        slot = float(name.rsplit("-", 1)[1])
        per_schedule[name.rsplit("-", 1)[0]] += 1
        lag_create.append(at - slot)
        lag_received.append(found["received"][name] - slot)
        serve.append(at - found["received"][name])
        mine = found["writes"].get(name, [])
        if mine:
            lag_write.append(mine[0] - slot)
        if name in starts.at:
            lag_start.append(starts.at[name] - slot)
    lag_create.sort()
    lag_write.sort()
    lag_received.sort()
    serve.sort()
    lag_start.sort()
    runs = len(window)
    other = found["other"]
    slots = int(args.seconds // args.interval)
    anchors = "spread over the interval" if args.spread else "created in the same second"
    print(f"\n{runs} runs of {args.schedules} schedules every {args.interval}s ({anchors}) "
          f"in {args.seconds:.0f}s; {load()}")  # fmt: skip
    print(f"slot → created:    p50 {pct(lag_create, 0.5)}, p99 {pct(lag_create, 0.99)}, "
          f"max {pct(lag_create, 1.0)}")  # fmt: skip
    print(f"  of which slot → the create received: p50 {pct(lag_received, 0.5)}, "
          f"p99 {pct(lag_received, 0.99)}; the apiserver serving it: p50 {pct(serve, 0.5)}, "
          f"p99 {pct(serve, 0.99)}, max {pct(serve, 1.0)}")  # fmt: skip
    print(f"slot → first status write: p50 {pct(lag_write, 0.5)}, p99 {pct(lag_write, 0.99)}, "
          f"max {pct(lag_write, 1.0)} ({len(lag_write)} written)")  # fmt: skip
    print(f"slot → handler started (status.startTime): p50 {pct(lag_start, 0.5)}, "
          f"p99 {pct(lag_start, 0.99)}, max {pct(lag_start, 1.0)} "
          f"({len(lag_start)} seen)")  # fmt: skip
    print(f"writes per run besides the create: {sum(other.values()) / max(len(counted), 1):.2f} "
          f"{dict(other)} over {len(counted)} runs")  # fmt: skip
    fewest = min((per_schedule[f"s{i:04d}"] for i in range(args.schedules)), default=0)
    print(f"fewest runs of a schedule: {fewest} (slots in the window: about {slots})")
    print(f"operator's schedule_lag (its clock, slot → create answered): {histogram}")
    print(f"operator RSS per schedule: {per / 1024:.1f} KiB; peak RSS {peak / 2**20:.1f} MiB")
    if args.timeline:
        print(timeline(window, found["received"], since))
    return 0


def timeline(window: list[tuple[str, float]], received: dict[str, float], since: float) -> str:
    """Per 5 s of slot times (from ``since``): the runs, slot → the create received."""
    buckets: dict[int, list[float]] = collections.defaultdict(list)
    for name, _ in window:
        slot = float(name.rsplit("-", 1)[1])
        buckets[int((slot - since) // 5) * 5].append(received[name] - slot)
    lines = ["timeline (slot time from the window's start: runs; slot → create received)"]
    for start in sorted(buckets):
        lags = sorted(buckets[start])
        lines.append(f"  {start:+4d} s: {len(lags):4d} runs; p50 {pct(lags, 0.5)}, "
                     f"p99 {pct(lags, 0.99)}, max {pct(lags, 1.0)}")  # fmt: skip
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
