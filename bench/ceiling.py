"""The apiserver's ceiling for a write pattern: what it takes, with nothing else running
(no operator, no worker, no broker work), of creates followed by the given mutating calls,
sent from the benchmark's own asyncio client with ``connections`` requests in flight.

The honest ceiling replays the operator's measured pattern (``audit.Writes.replay`` of the
burst: task i of the ceiling gets exactly the calls task i of the burst got); the "3-write"
ceiling is the old budget (a create and three status patches a task), kept as a second,
labelled line.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import cpu
from audit import STATUS
from kubeapi import KubeApi
from stack import Stack, load

NOOP = {"queue": "hello", "request": {"steps": 1, "step_seconds": 0}}
THREE_WRITES = (STATUS, STATUS, STATUS)


def _status(phase: str, queued: str, **more: Any) -> dict[str, Any]:
    """A status shaped like the operator's."""
    done = phase == "Succeeded"

    def cond(kind: str, true: bool) -> dict[str, Any]:
        return {
            "type": kind,
            "status": "True" if true else "False",
            "reason": "Bench",
            "message": "",
            "lastTransitionTime": queued,
            "observedGeneration": 1,
        }

    return {
        "phase": phase,
        "observedGeneration": 1,
        "queuedTime": queued,
        "conditions": [
            cond("Ready", done),
            cond("Completed", done),
            cond("Reconciling", not done),
            cond("Stalled", False),
        ],
        **more,
    }


def statuses(count: int, queued: str) -> list[dict[str, Any]]:
    """``count`` status writes of one task as the operator makes them: the last is the
    terminal one; with two or more the first is Pending (published); any between are
    Processing (and progress)."""
    pending = _status("Pending", queued, progress=0, message="queued")
    processing = _status(
        "Processing", queued, attempts=1, startTime=queued, worker="bench-1", progress=0
    )
    done = _status(
        "Succeeded",
        queued,
        attempts=1,
        startTime=queued,
        completionTime=queued,
        worker="bench-1",
        progress=100,
        result={"greeting": "Hello, world!"},
    )
    if count <= 0:
        return []
    if count == 1:
        return [done]
    return [pending] + [processing] * (count - 2) + [done]


async def replay(
    stack: Stack, patterns: list[tuple[str, ...]], connections: int, label: str
) -> tuple[float, dict[str, float]]:
    """Create one task per pattern and make its calls; returns task-equivalents/s and the
    CPU seconds of the apiserver, etcd and this client over the run."""
    tasks = len(patterns)
    requests = tasks + sum(len(p) for p in patterns)
    skipped = sorted({w for p in patterns for w in p if w != STATUS})
    print(
        f"ceiling ({label}): {tasks} x create + the pattern ({requests} requests), asyncio + "
        f"aiohttp, {connections} in flight ({load()})",
        flush=True,
    )
    if skipped:
        print(f"  (not replayed, only status patches are: {skipped})", flush=True)
    queued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    meter = cpu.Meter(stack.control_plane_pids())
    done = 0
    async with KubeApi(stack.cp.kubeconfig, connections) as api:
        sem = asyncio.Semaphore(connections)

        async def one(i: int, pattern: tuple[str, ...]) -> None:
            nonlocal done
            async with sem:
                name = f"ceiling-{i:06d}"
                obj = await api.create_task("ceiling", name, NOOP)
                uid = obj["metadata"]["uid"]
                for status in statuses(sum(w == STATUS for w in pattern), queued):
                    await api.replace_status("ceiling", name, uid, status)
                done += 1

        async def report(start: float) -> None:
            while True:
                await asyncio.sleep(2)
                print(f"  {done}/{tasks} after {time.monotonic() - start:.1f}s", flush=True)

        client = time.process_time()
        meter.start()
        start = time.monotonic()
        reporter = asyncio.create_task(report(start))
        await asyncio.gather(*(one(i, p) for i, p in enumerate(patterns)))
        took = time.monotonic() - start
        used = dict(meter.stop(), **{"bench client": time.process_time() - client})
        reporter.cancel()
        await api.delete_all("ceiling")
    rate = tasks / took
    print(
        f"ceiling ({label}): {tasks} task-equivalents in {took:.1f}s: {rate:.1f} tasks/s, "
        f"{requests / took:.0f} requests/s ({load()})",
        flush=True,
    )
    print("\n".join(cpu.per_task_lines(label, used, tasks, extra=["bench client"])))
    return rate, used
