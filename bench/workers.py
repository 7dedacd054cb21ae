"""Benchmark: the TypeScript worker vs the Python worker, no-op tasks end to end (issue 25).

    PYTHONPATH=hack:bench .venv/bin/python bench/workers.py [--tasks 600] [--rounds 1]

One stack (control plane, RabbitMQ, the operator, as ``throughput.py`` starts them); then,
per round, the same burst (``throughput.py burst``: --tasks created at once, tasks/s until
all Succeeded, latency percentiles, status writes per task) served by the Python worker,
then by the TypeScript one, each alone and in a namespace of its own. Both are the
conformance suite's workers (``tests/conformance/python_worker.py``,
``worker-ts/conformance/worker.ts``) with the same settings, so the handler is the same:
``conformance.echo``, which returns its request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys

from stack import Stack, load
from throughput import burst

from testbed._proc import spawn, stop, wait_until
from testbed.controlplane import REPO

ECHO = {"queue": "conformance.echo", "request": {"noop": True}}
WORKERS = {
    "python": [sys.executable, "-m", "tests.conformance.python_worker"],
    "typescript": ["node", str(REPO / "worker-ts/dist/conformance/worker.js")],
}


def _serve(stack: Stack, sdk: str, concurrency: int, tasks: int, parallel: int) -> float:
    """One burst served by the worker of ``sdk``, started for it and stopped after it."""
    namespace = f"bench-{sdk}-{len(list(stack.logs.glob('sdk-*.log')))}"
    stack.cp.kubectl("create", "namespace", namespace)
    log = stack.logs / f"sdk-{namespace}.log"
    env = dict(
        stack.env,
        PYTHONPATH=os.pathsep.join([str(REPO), stack.env.get("PYTHONPATH", "")]),
        ASYNCTASK_WORKER_QUEUES=ECHO["queue"],
        ASYNCTASK_WORKER_CONCURRENCY=str(concurrency),
    )
    worker = spawn(WORKERS[sdk], log, env)
    try:
        wait_until(f"{sdk} worker", lambda: "serving" in log.read_text(), 60, [(sdk, worker, log)])
        print(f"--- {sdk} worker (concurrency {concurrency}) ---", flush=True)
        rate, _ = asyncio.run(burst(stack, tasks, parallel, "", namespace, ECHO))
        return rate
    finally:
        stop(worker)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8, help="worker concurrency")
    parser.add_argument("--parallel", type=int, default=32, help="creates in flight")
    parser.add_argument("--rounds", type=int, default=1, help="python then typescript, N times")
    args = parser.parse_args()
    npm = shutil.which("npm")
    assert npm, "npm is needed to build worker-ts/"
    subprocess.run([npm, "run", "build"], cwd=REPO / "worker-ts", check=True, timeout=300)
    with Stack() as stack:
        stack.start_operator()
        rates: dict[str, list[float]] = {sdk: [] for sdk in WORKERS}
        for _ in range(args.rounds):
            for sdk in WORKERS:
                rates[sdk].append(_serve(stack, sdk, args.concurrency, args.tasks, args.parallel))
        for sdk, got in rates.items():
            print(f"{sdk}: " + ", ".join(f"{r:.1f}" for r in got) + " tasks/s")
        ts, py = max(rates["typescript"]), max(rates["python"])
        print(f"typescript/python (best of each): {ts:.1f} / {py:.1f} = {ts / py:.0%} ({load()})")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
