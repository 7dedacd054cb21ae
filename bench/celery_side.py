"""``throughput.py burst --celery``: the same burst through Celery on the same RabbitMQ node,
with the worker concurrency AsyncTask's worker had. The ratio tells what the
Kubernetes-native record (an object, its status writes, a watch) costs next to a task queue
that keeps no record but its result message.

Celery pins python-dateutil 2.x and the kubernetes client needs 3 or later, so Celery gets
an environment of its own (``.venv-celery``, made on first use): its worker and its client
(``celery_app.py``) run from there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cpu
from stack import Stack, load

from testbed._proc import spawn, stop

HERE = Path(__file__).resolve().parent
VENV = HERE.parent / ".venv-celery"
PYTHON = VENV / "bin" / "python"


def ensure_celery() -> None:
    if PYTHON.exists():
        return
    print(f"celery: making {VENV.name} (pip install celery)", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(PYTHON), "-m", "pip", "install", "-q", "celery>=5.5,<6"], check=True)


def burst(stack: Stack, tasks: int, concurrency: int) -> tuple[float, float]:
    """Tasks/s and the CPU ms a task of Celery's worker and RabbitMQ."""
    ensure_celery()
    env = dict(stack.env, BENCH_AMQP_URL=stack.rmq.url, PYTHONPATH=str(HERE))
    log = stack.logs / "celery-worker.log"
    worker = spawn(
        [
            str(PYTHON), "-m", "celery", "-A", "celery_app", "worker", "--pool", "threads",
            "--concurrency", str(concurrency), "--without-gossip", "--without-mingle",
            "--without-heartbeat", "--loglevel", "WARNING",
        ],
        log,
        env,
    )  # fmt: skip
    print(
        f"celery: {tasks} no-op tasks at once from 16 threads, a worker pool of {concurrency} "
        f"threads ({load()})",
        flush=True,
    )

    def client(count: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(PYTHON), str(HERE / "celery_app.py"), "--tasks", str(count)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            check=True,
            timeout=600,
        )

    assert stack.rmq.pid is not None
    meter = cpu.Meter({"celery worker": [worker.pid], "RabbitMQ": [stack.rmq.pid]})
    try:
        client(1)  # the worker is up, its start-up is not counted
        meter.start()
        lines = client(tasks).stdout.strip().splitlines()
        used = meter.stop()
    finally:
        stop(worker)
    print("\n".join(lines[:-1]), flush=True)
    timing = json.loads(lines[-1])
    rate = tasks / timing["took"]
    print(
        f"celery: {tasks} tasks sent in {timing['sent']:.1f}s, all done after "
        f"{timing['took']:.1f}s: {rate:.1f} tasks/s ({load()})",
        flush=True,
    )
    print("\n".join(cpu.per_task_lines("celery", used, tasks)))
    print("  (the client's process, with its start-up, is not counted)")
    return rate, cpu.total_ms(used, tasks)
