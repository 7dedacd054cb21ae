"""Benchmark: tasks end to end through the real stack, what the apiserver alone can take,
and how many live tasks the operator holds.

    PYTHONPATH=hack:bench .venv/bin/python bench/throughput.py MODE [options]

Modes (each starts its own control plane, RabbitMQ, operator and worker, and prints what
it does while it runs; every figure is printed with the load average):

* ``burst``: --tasks created at once; tasks/s until all Succeeded, create→Processing and
  create→Succeeded percentiles, the mutating calls per task (audit log: mean, min, p50,
  max, histogram, patterns), CPU ms per task of each component (``cpu.py``) and what the
  apiserver served (its request metrics). Then, with the operator and worker stopped, the
  ceiling (``ceiling.py``, --no-ceiling to skip it): the apiserver alone taking the burst's
  own measured write pattern, task for task, and the 3-write budget as a second line; the
  ratios. With --celery, then the same burst through Celery on the same RabbitMQ, its CPU
  per task, and the ratios. --profile FILE: py-spy the operator during the burst.
* ``ceiling``: the apiserver alone taking --tasks x (a create and three status patches).
* ``rate``: --rate new tasks/s for --seconds; latency percentiles, the backlog (created,
  not yet Succeeded) every 5 s and whether it stayed flat, CPU ms per task.
* ``scale``: --tasks Pending tasks and no worker; operator RSS and bytes per task; then an
  operator restart: time until the deadlines are rebuilt and a new task is queued, and the
  single-object GETs of AsyncTasks the restart cost (apiserver metrics).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import ceiling
import celery_side
import cpu
import profiler
from audit import Writes
from ceiling import NOOP
from kubeapi import KubeApi
from stack import Stack, audit_latencies, load, rss_bytes

from testbed.controlplane import PROFILING_ENV

TERMINAL = {"Succeeded", "Failed", "Error", "Cancelled", "TimedOut"}


class Recorder:
    """When each task was created, first seen past Pending, and first seen terminal (the
    watch of the namespace)."""

    def __init__(self) -> None:
        self.created: dict[str, float] = {}
        self.started: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.phases: collections.Counter[str] = collections.Counter()

    async def follow(self, api: KubeApi, namespace: str) -> None:
        async for obj in api.watch(namespace):
            name, now = obj["metadata"]["name"], time.monotonic()
            phase = (obj.get("status") or {}).get("phase") or ""
            if phase and phase != "Pending":
                self.started.setdefault(name, now)
            if phase in TERMINAL and name not in self.done:
                self.done[name] = now
                self.phases[phase] += 1

    def latencies(self, until: dict[str, float]) -> list[float]:
        return sorted(until[n] - t for n, t in self.created.items() if n in until)


async def poll(done: Callable[[], bool], interval: float = 1.0) -> None:
    """Wait until ``done()`` (checked every ``interval`` seconds)."""
    while True:
        if done():
            return
        await asyncio.sleep(interval)


def pct(values: list[float], q: float) -> str:
    if not values:
        return "n/a"
    return f"{values[min(len(values) - 1, int(q * len(values)))] * 1000:.0f} ms"


def latency_line(label: str, values: list[float]) -> str:
    return (
        f"  {label}: p50 {pct(values, 0.5)}, p90 {pct(values, 0.9)}, "
        f"p99 {pct(values, 0.99)}, max {pct(values, 1.0)} ({len(values)} tasks)"
    )


async def create_all(
    api: KubeApi,
    namespace: str,
    names: list[str],
    spec: dict[str, Any],
    rec: Recorder | None,
    parallel: int,
) -> None:
    sem = asyncio.Semaphore(parallel)

    async def one(name: str) -> None:
        async with sem:
            if rec is not None:
                rec.created[name] = time.monotonic()
            await api.create_task(namespace, name, spec)

    await asyncio.gather(*(one(n) for n in names))


# burst ------------------------------------------------------------------------------------


async def burst(
    stack: Stack,
    tasks: int,
    parallel: int,
    profile: str = "",
    namespace: str = "bench",
    spec: dict[str, Any] = NOOP,
    apiprof: tuple[str, int] = ("", 0),
) -> tuple[float, float]:
    """The burst; returns tasks/s end to end and the CPU ms a task of the whole system."""
    rec = Recorder()
    names = [f"burst-{i:06d}" for i in range(tasks)]
    print(
        f"burst: creating {tasks} no-op tasks at once ({parallel} creates in flight; {load()})",
        flush=True,
    )
    meter = cpu.Meter(stack.component_pids())
    async with KubeApi(stack.cp.kubeconfig, parallel + 2) as api:
        watch = asyncio.create_task(rec.follow(api, namespace))
        await asyncio.sleep(0.5)  # the watch is established
        requests = await api.request_stats()
        spy = profiler.start(stack, profile)
        goprof = profiler.start_apiserver(stack, *apiprof)
        client = time.process_time()
        meter.start()
        start = time.monotonic()
        creating = asyncio.create_task(create_all(api, namespace, names, spec, rec, parallel))
        while len(rec.done) < tasks:
            await asyncio.sleep(1)
            print(
                f"  after {time.monotonic() - start:.1f}s: {len(rec.created)} created, "
                f"{len(rec.started)} started, {len(rec.done)} done",
                flush=True,
            )
        await creating
        used = dict(meter.stop(), **{"bench client": time.process_time() - client})
        profiler.stop(spy)
        profiler.stop_apiserver(goprof, apiprof[0])
        took = max(rec.done.values()) - start
        watch.cancel()
        requests = profiler.delta(await api.request_stats(), requests)
    rate = tasks / took
    created = max(rec.created.values()) - start
    print(
        f"burst: {tasks} tasks created in {created:.1f}s, all done after {took:.1f}s: "
        f"{rate:.1f} tasks/s end to end ({load()}); phases {dict(rec.phases)}"
    )
    print(latency_line("create→Processing (seen by a watch)", rec.latencies(rec.started)))
    print(latency_line("create→Succeeded (seen by a watch)", rec.latencies(rec.done)))
    report_writes(stack, namespace, tasks)
    return rate, report_cpu(used, requests, tasks, rate, meter.wall)


EXTRA = ("bench client", "kube-controller-manager")


def report_cpu(
    used: dict[str, float],
    requests: dict[str, tuple[float, float]],
    tasks: int,
    rate: float,
    wall: float,
) -> float:
    """CPU ms a task per component, how much of the machine the burst used, and what the
    apiserver served meanwhile; returns the total CPU ms a task."""
    print("\n".join(cpu.per_task_lines("burst", used, tasks, extra=EXTRA)))
    total = cpu.total_ms(used, tasks, extra=EXTRA)
    cores = os.cpu_count() or 1
    bound = cores * 1000 / total
    busy = sum(s for n, s in used.items() if n not in EXTRA) / wall / cores
    print(
        f"  {cores} cores give {cores * 1000} CPU ms/s: {total:.1f} ms a task bounds the "
        f"system at {bound:.0f} tasks/s; the burst ran at {rate:.1f} = {rate / bound:.2f} of "
        f"that (the components used {busy:.0%} of the machine over {wall:.1f}s)"
    )
    print(profiler.request_lines(requests, tasks))
    return total


def report_writes(stack: Stack, namespace: str, tasks: int) -> None:
    time.sleep(2)  # the audit log is written asynchronously
    started, done = audit_latencies(stack.cp.audit_log, namespace)
    print(latency_line("create→Processing (apiserver clock)", started))
    print(latency_line("create→terminal (apiserver clock)", done))
    dist = stack.status_writes(namespace)
    total = sum(n * k for n, k in dist.items())
    print(
        f"  status writes per task: {total / tasks:.2f} on average; distribution "
        + ", ".join(f"{n} writes: {k} tasks" for n, k in sorted(dist.items()))
    )
    print("\n".join(Writes(stack.cp.audit_log, namespace).lines()))
    # What the operator took off the status queue ("folded" counts writes saved, of
    # messages counted "applied"); each task is one task message besides.
    received = stack.operator_metric_sum(
        "asynctask_operator_status_messages_total", 'result="folded"'
    )
    print(
        f"  status messages per task (the operator's count): {received / tasks:.2f}, "
        f"so {1 + received / tasks:.2f} messages a task with its task message"
    )


# fixed rate -------------------------------------------------------------------------------


async def fixed_rate(stack: Stack, rate: float, seconds: float) -> None:
    rec = Recorder()
    total = int(rate * seconds)
    print(f"rate: {rate:g} new tasks/s for {seconds:g}s ({total} tasks; {load()})", flush=True)
    meter = cpu.Meter(stack.component_pids())
    async with KubeApi(stack.cp.kubeconfig, 64) as api:
        watch = asyncio.create_task(rec.follow(api, "bench"))
        await asyncio.sleep(0.5)
        client = time.process_time()
        meter.start()
        start = time.monotonic()
        pending: set[asyncio.Task[Any]] = set()

        async def one(name: str) -> None:
            rec.created[name] = time.monotonic()
            await api.create_task("bench", name, NOOP)

        backlog: list[int] = []
        next_report = 5.0
        for i in range(total):
            due = start + i / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            task = asyncio.create_task(one(f"rate-{i:06d}"))
            pending.add(task)
            task.add_done_callback(pending.discard)
            if time.monotonic() - start >= next_report:
                backlog.append(len(rec.created) - len(rec.done))
                print(
                    f"  t={next_report:.0f}s: {len(rec.created)} created, backlog "
                    f"{backlog[-1]} not yet done ({load()})",
                    flush=True,
                )
                next_report += 5
        await asyncio.gather(*pending)
        await poll(lambda: len(rec.done) >= total or time.monotonic() - start > seconds + 120)
        used = dict(meter.stop(), **{"bench client": time.process_time() - client})
        watch.cancel()
    print(f"rate: {len(rec.done)}/{total} done ({load()})")
    print(latency_line("create→Processing (seen by a watch)", rec.latencies(rec.started)))
    print(latency_line("create→Succeeded (seen by a watch)", rec.latencies(rec.done)))
    print(f"  backlog every 5 s: {backlog}; {backlog_verdict(backlog, rate)}")
    report_writes(stack, "bench", total)
    print("\n".join(cpu.per_task_lines("rate", used, total, extra=EXTRA)))


def backlog_verdict(backlog: list[int], rate: float) -> str:
    """Flat when the second half's largest backlog is within a second of work of the first
    half's (the samples are instants of a noisy queue, so one sample is no trend)."""
    if len(backlog) < 4:
        return "too short to tell"
    half = len(backlog) // 2
    first, second = max(backlog[:half]), max(backlog[half:])
    grew = second - first
    verdict = "flat" if grew <= rate else "GROWING"
    return f"{verdict} (largest in the first half {first}, in the second {second})"


# scale ------------------------------------------------------------------------------------


SCALE_SPEC = {"queue": "nobody-serves-this", "queueTimeoutSeconds": 86400}


def scale_spec(i: int) -> dict[str, Any]:
    """A task of the scale modes: a request of its own (as real tasks have), a deadline."""
    return {**SCALE_SPEC, "request": {"n": i}, "ttlSecondsAfterFinished": 86400}


async def scale(stack: Stack, tasks: int) -> None:
    assert stack.operator is not None
    base = rss_bytes(stack.operator.pid)
    print(
        f"scale: operator RSS {base / 2**20:.1f} MiB with no task; creating {tasks} "
        f"Pending tasks, no worker ({load()})",
        flush=True,
    )
    names = [f"scale-{i:06d}" for i in range(tasks)]
    async with KubeApi(stack.cp.kubeconfig, 34) as api:
        start = time.monotonic()
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await api.create_task("scale", names[i], scale_spec(i))

        creating = asyncio.gather(*(one(i) for i in range(tasks)))
        while (
            not creating.done()
            or stack.operator_metric("asynctask_operator_deadlines_pending") < tasks
        ):
            await asyncio.sleep(5)
            print(
                f"  after {time.monotonic() - start:.0f}s: operator tracks "
                f"{stack.operator_metric('asynctask_operator_tasks_tracked'):.0f}, "
                f"deadlines {stack.operator_metric('asynctask_operator_deadlines_pending'):.0f}"
                f", RSS {rss_bytes(stack.operator.pid) / 2**20:.1f} MiB ({load()})",
                flush=True,
            )
        await creating
        rss = rss_bytes(stack.operator.pid)
        print(
            f"scale: {tasks} Pending tasks: operator RSS {rss / 2**20:.1f} MiB, "
            f"{(rss - base) / tasks:.0f} bytes a task above the empty operator ({load()})"
        )
        print("scale: restarting the operator", flush=True)
        stack.stop_operator()
        await restart(stack, api, tasks, base)


async def restart(stack: Stack, api: KubeApi, tasks: int, base: int) -> None:
    """Start the operator with ``tasks`` tasks in the cluster: how soon every deadline is
    rebuilt and a new task queued, what it read one by one, and its memory."""
    gets = await api.request_count("GET", "asynctasks")
    start = time.monotonic()
    operator = stack.start_operator()
    await poll(lambda: stack.operator_metric("asynctask_operator_deadlines_pending") >= tasks, 0.5)
    rebuilt = time.monotonic() - start
    gets_after = await api.request_count("GET", "asynctasks")  # before a GET of ours
    name = f"after-restart-{int(start)}"
    await api.create_task("scale", name, SCALE_SPEC)
    while await api.phase("scale", name) != "Pending":  # noqa: ASYNC110 (a GET, not a flag)
        await asyncio.sleep(0.2)
    back = time.monotonic() - start
    rss, peak = rss_bytes(operator.pid), rss_bytes(operator.pid, "VmHWM")
    print(
        f"scale: started with {tasks} tasks: {tasks} deadlines rebuilt after {rebuilt:.1f}s, "
        f"a new task queued after {back:.1f}s; single-object GETs of AsyncTasks until the "
        f"deadlines were rebuilt: {gets_after - gets:.0f}; RSS {rss / 2**20:.1f} MiB "
        f"(peak {peak / 2**20:.1f} MiB), {(rss - base) / tasks:.0f} bytes a task above the "
        f"empty operator ({load()})",
        flush=True,
    )


async def prefilled(stack: Stack, tasks: int) -> None:
    """--prefill: the bench writes the tasks and their statuses (as the operator would) while
    no operator runs, then starts one: first with them all Pending, then all Succeeded."""
    from asynctask_operator import status as st

    operator = stack.start_operator()
    base = rss_bytes(operator.pid)
    stack.stop_operator()
    print(f"scale: operator RSS {base / 2**20:.1f} MiB with no task ({load()})", flush=True)
    now = datetime.now(UTC)
    async with KubeApi(stack.cp.kubeconfig, 66) as api:
        uids: dict[int, str] = {}

        async def pending(i: int) -> None:
            obj = await api.create_task("scale", f"scale-{i:06d}", scale_spec(i))
            uids[i] = obj["metadata"]["uid"]
            status = st.pending({}, f"task:{uids[i]}:1", now, 1)
            await api.replace_status("scale", f"scale-{i:06d}", uids[i], status)

        await fill(tasks, "Pending", pending)
        await restart(stack, api, tasks, base)
        stack.stop_operator()

        async def succeeded(i: int) -> None:
            status = st.pending({}, f"task:{uids[i]}:1", now, 1)
            status.update(
                phase="Succeeded",
                attempts=1,
                startTime=status["queuedTime"],
                completionTime=st.precise_time(now),
                progress=100,
                message="done",
                worker="bench-worker-0/1",
                result={"greeting": "Hello, world!", "n": i},
            )
            await api.replace_status("scale", f"scale-{i:06d}", uids[i], st.finish(status, now, 1))

        await fill(tasks, "Succeeded", succeeded)
        await restart(stack, api, tasks, base)


async def fill(tasks: int, phase: str, one: Callable[[int], Awaitable[None]]) -> None:
    print(f"scale: writing {tasks} {phase} tasks, no operator running ({load()})", flush=True)
    sem, done, start = asyncio.Semaphore(64), 0, time.monotonic()

    async def limited(i: int) -> None:
        nonlocal done
        async with sem:
            await one(i)
            done += 1
            if done % 10000 == 0 or done == tasks:
                print(f"  {done}/{tasks} after {time.monotonic() - start:.0f}s", flush=True)

    await asyncio.gather(*(limited(i) for i in range(tasks)))


# main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["burst", "ceiling", "rate", "scale"])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8, help="worker concurrency")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--parallel", type=int, default=32, help="creates in flight")
    parser.add_argument(
        "--connections", type=int, default=64, help="requests in flight in the ceiling mode"
    )
    parser.add_argument("--no-ceiling", action="store_true")
    parser.add_argument(
        "--celery",
        action="store_true",
        help="burst: then the same burst through Celery on the same RabbitMQ (from an "
        "environment of its own, .venv-celery, made on first use)",
    )
    parser.add_argument(
        "--prefill",
        action="store_true",
        help="scale: write the tasks (Pending, then Succeeded) with no operator running, "
        "then start one",
    )
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument(
        "--profile", default="", help="burst: py-spy the operator into this file (raw format)"
    )
    parser.add_argument(
        "--apiprof",
        default="",
        help="burst: the apiserver's Go CPU profile (pprof) over the burst's first "
        "--apiprof-seconds into this file, with its top frames printed",
    )
    parser.add_argument("--apiprof-seconds", type=int, default=8)
    args = parser.parse_args()
    if args.apiprof:
        os.environ[PROFILING_ENV] = "1"  # before the control plane starts
    with Stack() as stack:
        if args.mode == "ceiling":
            asyncio.run(ceiling.replay(stack, [ceiling.THREE_WRITES] * args.tasks,
                                       args.connections, "3 writes"))  # fmt: skip
            return 0
        if args.mode == "scale" and args.prefill:
            asyncio.run(prefilled(stack, args.tasks))
            return 0
        stack.start_operator()
        if args.mode == "scale":
            asyncio.run(scale(stack, args.tasks))
            return 0
        for _ in range(args.workers):
            stack.start_worker(args.concurrency)
        if args.mode == "burst":
            run_burst(stack, args)
        else:
            asyncio.run(fixed_rate(stack, args.rate, args.seconds))
    return 0


def run_burst(stack: Stack, args: argparse.Namespace) -> None:
    """The burst, then (operator and worker stopped) the apiserver alone taking the
    burst's own write pattern and the 3-write one, then Celery; the ratios."""
    rate, total = asyncio.run(
        burst(stack, args.tasks, args.parallel, args.profile,
              apiprof=(args.apiprof, args.apiprof_seconds))
    )  # fmt: skip
    stack.stop_workers()  # the ceiling and Celery get the cores AsyncTask's parts had
    stack.stop_operator()
    if not args.no_ceiling:
        pattern = Writes(stack.cp.audit_log, "bench").replay()
        honest, _ = asyncio.run(ceiling.replay(stack, pattern, args.connections, "measured"))
        three, _ = asyncio.run(
            ceiling.replay(stack, [ceiling.THREE_WRITES] * len(pattern), args.connections,
                           "3 writes")
        )  # fmt: skip
        # What a create alone costs the apiserver; the difference is the status patches'.
        asyncio.run(ceiling.replay(stack, [()] * len(pattern), args.connections, "creates only"))
        print(f"burst/ceiling (the burst's measured writes): {rate:.1f} / {honest:.1f} "
              f"tasks/s = {rate / honest:.2f} ({load()})")  # fmt: skip
        print(f"burst/ceiling (3 status writes a task, the budget): {rate:.1f} / "
              f"{three:.1f} tasks/s = {rate / three:.2f}")  # fmt: skip
    if args.celery:
        other, celery_ms = celery_side.burst(stack, args.tasks, args.concurrency * args.workers)
        print(f"asynctask/celery: {rate:.1f} / {other:.1f} tasks/s = {rate / other:.2f}; "
              f"CPU ms a task {total:.1f} / {celery_ms:.1f}")  # fmt: skip


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
