"""Benchmark: AsyncQueue admission. Not a test: it prints figures, with the load average.

    PYTHONPATH=hack:bench .venv/bin/python bench/queues.py [--tasks 600] [--held 100000]

Three parts, one after the other:

* ``decisions``: the pure admission logic alone (queues.admission): --held tasks held in
  5 priorities x 20 namespaces, then admitted one at a time under a cap (each admission a
  decision over every group's head), and new tasks offered to a queue without limits
  (hold + admit: the path of a task admitted at once).
* ``burst``: --tasks no-op tasks created at once through the real stack (control plane,
  RabbitMQ, operator, one worker), alternately on a queue without an AsyncQueue and on the
  same queue with an AsyncQueue without limits (--rounds of each, each in a namespace of
  its own): tasks/s end to end.
* ``held``: --held tasks written held by a paused AsyncQueue (each created, then given the
  held status the operator writes) with no operator running; then an operator starts:
  the time until it holds them all again (its queue_held metric) and a new task of another
  queue is queued, and its RSS (and peak).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from datetime import UTC, datetime

from kubeapi import KubeApi
from stack import Stack, load, rss_bytes
from throughput import NOOP, Recorder, create_all, poll

from asynctask_operator import status as st
from asynctask_operator.queues.admission import Admission, Held
from asynctask_operator.queues.policy import parse

HELD_QUEUE = "bench-held"


# decisions (pure) -------------------------------------------------------------------------


def decisions(held: int) -> None:
    capped, _ = parse({"maxInFlight": 10, "priority": {"agingSeconds": 60}})
    adm = Admission(capped, 0.0)
    start = time.perf_counter()
    for i in range(held):
        adm.hold(Held(f"u{i}", f"ns-{i % 20}", i % 5, i * 0.001, ("t", f"{i:07d}")))
    holding = time.perf_counter() - start
    start, admitted = time.perf_counter(), 0
    while len(adm):
        for uid in adm.admit(1000.0):
            adm.finished(uid)
            admitted += 1
    admitting = time.perf_counter() - start
    free, _ = parse({})
    open_queue = Admission(free, 0.0)
    start = time.perf_counter()
    for i in range(held):
        open_queue.hold(Held(f"o{i}", f"ns-{i % 20}", 0, 0.0, ("t", f"{i:07d}")))
        for uid in open_queue.admit(0.0):
            open_queue.finished(uid)
    at_once = time.perf_counter() - start
    print(
        f"decisions: {held} held in 100 groups: held at {held / holding:,.0f}/s; admitted one "
        f"at a time under a cap at {admitted / admitting:,.0f}/s; offered to a queue without "
        f"limits (hold + admit) at {held / at_once:,.0f}/s ({load()})",
        flush=True,
    )


# burst with and without an AsyncQueue ---------------------------------------------------


def apply_queue(stack: Stack, name: str, spec: dict[str, object]) -> None:
    manifest = {
        "apiVersion": "asynctask.dev/v1alpha1",
        "kind": "AsyncQueue",
        "metadata": {"name": name},
        "spec": spec,
    }
    stack.cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))


async def one_burst(stack: Stack, namespace: str, tasks: int, parallel: int) -> float:
    rec = Recorder()
    names = [f"burst-{i:06d}" for i in range(tasks)]
    async with KubeApi(stack.cp.kubeconfig, parallel + 2) as api:
        watch = asyncio.create_task(rec.follow(api, namespace))
        await asyncio.sleep(0.5)
        start = time.monotonic()
        creating = asyncio.create_task(create_all(api, namespace, names, NOOP, rec, parallel))
        await poll(lambda: len(rec.done) >= tasks, 0.5)
        await creating
        took = max(rec.done.values()) - start
        watch.cancel()
    return tasks / took


def bursts(stack: Stack, tasks: int, rounds: int, parallel: int) -> None:
    figures: dict[bool, list[float]] = {False: [], True: []}
    for r in range(rounds):
        for policy in (False, True):
            if policy:
                apply_queue(stack, "hello", {})
            else:
                stack.cp.kubectl("delete", "asyncqueue", "hello", "--ignore-not-found")
            namespace = f"qb-{r}-{int(policy)}"
            stack.cp.kubectl("create", "namespace", namespace)
            time.sleep(1)  # the operator has seen the AsyncQueue come or go
            rate = asyncio.run(one_burst(stack, namespace, tasks, parallel))
            figures[policy].append(rate)
            label = "with an AsyncQueue without limits" if policy else "without an AsyncQueue"
            print(f"burst {r + 1}: {tasks} tasks {label}: {rate:.1f} tasks/s ({load()})")
    without, with_ = statistics.mean(figures[False]), statistics.mean(figures[True])
    print(
        f"burst: mean of {rounds}: {with_:.1f} tasks/s with an AsyncQueue, {without:.1f} "
        f"without: {with_ / without:.0%}",
        flush=True,
    )


# 100k held, and a restart -----------------------------------------------------------------


def queue_held(stack: Stack) -> float:
    text = stack.metrics_text()
    if text is None:
        return float("nan")
    prefix = f'asynctask_operator_queue_held{{queue="{HELD_QUEUE}",reason="Paused"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[1])
    return 0.0


async def held(stack: Stack, tasks: int) -> None:
    apply_queue(stack, HELD_QUEUE, {"paused": True, "maxInFlight": 10})
    operator = stack.start_operator()
    base = rss_bytes(operator.pid)
    stack.stop_operator()
    print(f"held: operator RSS {base / 2**20:.1f} MiB with no task ({load()})", flush=True)
    now = datetime.now(UTC)
    spec = {"queue": HELD_QUEUE, "request": {"n": 0}, "ttlSecondsAfterFinished": 86400}
    async with KubeApi(stack.cp.kubeconfig, 66) as api:
        sem, done, start = asyncio.Semaphore(64), 0, time.monotonic()

        async def one(i: int) -> None:
            nonlocal done
            name = f"held-{i:06d}"
            async with sem:
                obj = await api.create_task("scale", name, dict(spec, priority=i % 5))
                status = st.queue_held({}, "Paused", f"held: queue {HELD_QUEUE} is paused", now, 1)
                await api.replace_status("scale", name, obj["metadata"]["uid"], status)
            done += 1
            if done % 10000 == 0 or done == tasks:
                print(f"  {done}/{tasks} written after {time.monotonic() - start:.0f}s", flush=True)

        print(f"held: writing {tasks} held tasks, no operator running ({load()})", flush=True)
        await asyncio.gather(*(one(i) for i in range(tasks)))
        start = time.monotonic()
        operator = stack.start_operator()
        await poll(lambda: queue_held(stack) >= tasks, 0.5)
        rebuilt = time.monotonic() - start
        name = f"after-restart-{int(start)}"
        await api.create_task("scale", name, {"queue": "hello"})
        while await api.phase("scale", name) != "Pending":  # noqa: ASYNC110 (a GET, not a flag)
            await asyncio.sleep(0.2)
        back = time.monotonic() - start
        rss, peak = rss_bytes(operator.pid), rss_bytes(operator.pid, "VmHWM")
        print(
            f"held: an operator started with {tasks} held tasks holds them all again after "
            f"{rebuilt:.1f}s; a new task of another queue was queued after {back:.1f}s; RSS "
            f"{rss / 2**20:.1f} MiB (peak {peak / 2**20:.1f} MiB), {(rss - base) / tasks:.0f} "
            f"bytes a task above the empty operator ({load()})",
            flush=True,
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=600, help="tasks of each burst")
    parser.add_argument("--rounds", type=int, default=2, help="bursts of each kind")
    parser.add_argument("--parallel", type=int, default=32, help="creates in flight")
    parser.add_argument("--held", type=int, default=100_000)
    parser.add_argument("--only", choices=["decisions", "burst", "held"])
    args = parser.parse_args()
    if args.only in (None, "decisions"):
        decisions(args.held)
    if args.only == "decisions":
        return 0
    with Stack() as stack:
        if args.only in (None, "burst"):
            stack.start_operator()
            stack.start_worker(8)
            bursts(stack, args.tasks, args.rounds, args.parallel)
            stack.stop_workers()
            stack.stop_operator()
        if args.only in (None, "held"):
            asyncio.run(held(stack, args.held))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
