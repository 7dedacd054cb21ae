"""Benchmark: the single deadline scheduler with many live tasks.

    .venv/bin/python bench/deadlines.py [--tasks 100000]

Sets one deadline per task (as the operator does for 100k live tasks with timeouts),
re-sets half of them (progress moving deadlines), lets them all fire, and reports the
cost per operation and the memory the scheduler holds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import tracemalloc

from asynctask_operator.deadlines import Kind
from asynctask_operator.timers import Deadlines


async def main(tasks: int) -> None:
    fired = 0
    done = asyncio.Event()

    async def fire(uid: str, kind: Kind) -> None:
        nonlocal fired
        fired += 1
        if fired == tasks:
            done.set()

    tracemalloc.start()
    d = Deadlines()
    now = time.time()
    t0 = time.perf_counter()
    for i in range(tasks):
        d.set(f"uid-{i:08d}", Kind.RUN_TIMEOUT, now + 3600 + i)
    t1 = time.perf_counter()
    for i in range(0, tasks, 2):
        d.set(f"uid-{i:08d}", Kind.RUN_TIMEOUT, now + 0.5 + i * 1e-6)
    for i in range(1, tasks, 2):
        d.set(f"uid-{i:08d}", Kind.RUN_TIMEOUT, now + 0.5 + i * 1e-6)
    t2 = time.perf_counter()
    current, peak = tracemalloc.get_traced_memory()
    print(f"set {tasks} deadlines: {1e6 * (t1 - t0) / tasks:.2f} µs each")
    print(f"re-set {tasks} deadlines: {1e6 * (t2 - t1) / tasks:.2f} µs each")
    print(
        f"scheduler memory: {current / 2**20:.1f} MiB ({current / tasks:.0f} B a task), "
        f"peak {peak / 2**20:.1f} MiB"
    )
    runner = asyncio.create_task(d.run(fire))
    t3 = time.perf_counter()
    await asyncio.wait_for(done.wait(), 120)
    t4 = time.perf_counter()
    runner.cancel()
    print(f"fired {fired} deadlines in {t4 - t3:.2f}s (one asyncio task, not {tasks})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=100_000)
    asyncio.run(main(parser.parse_args().tasks))
