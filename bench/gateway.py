"""Benchmark: the HTTP gateway on the real stack.

    PYTHONPATH=hack .venv/bin/python bench/gateway.py [--posts 200] [--delays 40]
        [--fanout-tasks 100] [--per-task 10] [--cache-tasks 10000]

Starts the local control plane, RabbitMQ, the operator, an example worker and one gateway
process, then reports:

1. POST -> 202 latency (p50/p99), one client, ``--posts`` submissions;
2. terminal status write -> /wait answer, and -> SSE terminal event (p50/p99), for
   ``--delays`` tasks; the write time is when this script's own watch of the apiserver saw
   the terminal status (the gateway's watch sees it at about the same moment);
3. one gateway process holding ``--fanout-tasks`` x ``--per-task`` SSE streams plus as many
   long-polls (1,000 + 1,000 by default): its memory and CPU while they are open, then every
   task is cancelled through the gateway and each stream and wait must get the terminal event;
0. (first) the cache's memory per 10k tasks: the gateway's RSS before and after
   ``--cache-tasks`` AsyncTasks (a namespace no operator serves) are in its cache, and the
   projection it keeps measured with tracemalloc.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from asynctask_gateway.cache import project
from asynctask_gateway.kube import Kube, tasks_path
from testbed._proc import free_port, spawn, stop, wait_until
from testbed.controlplane import REPO, ControlPlane
from testbed.rabbitmq import RabbitMQ

TERMINAL = {"Succeeded", "Failed", "Error", "Cancelled", "TimedOut"}
HZ = os.sysconf("SC_CLK_TCK")
#: A started process of the stack: its name, the process and its log.
Proc = tuple[str, subprocess.Popen[bytes], Path]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name}: p50 {pct(ms, 0.5):.1f} ms, p99 {pct(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms (n={len(ms)})"
    )


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


class Client:
    def __init__(self, base: str, token: str, namespace: str) -> None:
        self.base, self.namespace = base, namespace
        self.headers = {"Authorization": f"Bearer {token}"}
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=None)
        )

    def tasks(self, name: str = "") -> str:
        return f"{self.base}/v1/namespaces/{self.namespace}/tasks" + (f"/{name}" if name else "")

    async def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.tasks(), json=body, headers=self.headers) as resp:
            assert resp.status == 202, await resp.text()
            view: dict[str, Any] = await resp.json()
            return view

    async def wait(self, name: str) -> tuple[float, dict[str, Any]]:
        async with self.session.get(
            self.tasks(name) + "/wait?timeout=55s", headers=self.headers
        ) as resp:
            assert resp.status == 200, await resp.text()
            view: dict[str, Any] = await resp.json()
            return time.monotonic(), view

    async def terminal_event(
        self, name: str, opened: asyncio.Event | None = None
    ) -> tuple[float, str]:
        """When the stream's terminal event arrived, and its name."""
        async with self.session.get(self.tasks(name) + "/events", headers=self.headers) as resp:
            assert resp.status == 200, await resp.text()
            if opened is not None:
                opened.set()
            event = ""
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event in TERMINAL:
                    return time.monotonic(), event
        raise AssertionError(f"the stream of {name} closed without a terminal event")

    async def cancel(self, name: str) -> None:
        async with self.session.post(self.tasks(name) + "/cancel", headers=self.headers) as resp:
            assert resp.status == 202, await resp.text()


class TerminalWatch:
    """This script's own watch: when each task's terminal status was seen."""

    def __init__(self, kube: Kube, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.seen: dict[str, float] = {}
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        listing = await self.kube.request("GET", tasks_path(self.namespace))
        version = listing["metadata"]["resourceVersion"]
        async for event in self.kube.watch(
            tasks_path(self.namespace), {"resourceVersion": version}, read_timeout=600
        ):
            obj = event.get("object") or {}
            if (obj.get("status") or {}).get("phase") in TERMINAL:
                self.seen.setdefault(obj["metadata"]["name"], time.monotonic())


async def post_latency(client: Client, posts: int) -> None:
    print(f"\n1. POST -> 202, {posts} submissions one after another", flush=True)
    took = []
    for i in range(posts):
        start = time.monotonic()
        await client.submit({"queue": "hello", "request": {"steps": 1, "step_seconds": 0}})
        took.append(time.monotonic() - start)
        if (i + 1) % 50 == 0:
            print(f"  {i + 1}/{posts}", flush=True)
    print(summary("POST -> 202", took), flush=True)


async def delays(client: Client, watch: TerminalWatch, count: int) -> None:
    print(f"\n2. terminal status write -> wait answer / SSE event, {count} tasks", flush=True)
    to_wait, to_event = [], []

    async def one() -> None:
        view = await client.submit({"queue": "hello", "request": {"steps": 2, "step_seconds": 0.5}})
        opened = asyncio.Event()
        event = asyncio.create_task(client.terminal_event(view["name"], opened))
        await opened.wait()
        answered, final = await client.wait(view["name"])
        streamed, _ = await event
        assert final["done"], final
        for _ in range(100):
            if view["name"] in watch.seen:
                break
            await asyncio.sleep(0.05)
        seen = watch.seen[view["name"]]
        to_wait.append(answered - seen)
        to_event.append(streamed - seen)

    for start in range(0, count, 10):
        await asyncio.gather(*(one() for _ in range(min(10, count - start))))
        print(f"  {min(start + 10, count)}/{count}", flush=True)
    print(summary("terminal write -> /wait answer", to_wait))
    print(summary("terminal write -> SSE event", to_event), flush=True)


async def fanout(client: Client, gateway_pid: int, tasks: int, per_task: int) -> None:
    total = tasks * per_task
    print(f"\n3. {total} SSE streams + {total} long-polls on {tasks} tasks", flush=True)
    base_rss, base_cpu = rss_mib(gateway_pid), cpu_seconds(gateway_pid)
    views = [await client.submit({"queue": "bench-hold"}) for _ in range(tasks)]
    opened: list[asyncio.Event] = []
    streams, waits = [], []
    for view in views:
        for _ in range(per_task):
            flag = asyncio.Event()
            opened.append(flag)
            streams.append(asyncio.create_task(client.terminal_event(view["name"], flag)))
            waits.append(asyncio.create_task(client.wait(view["name"])))
    await asyncio.gather(*(flag.wait() for flag in opened))
    await asyncio.sleep(2)
    cpu_start, at = cpu_seconds(gateway_pid), time.monotonic()
    await asyncio.sleep(5)
    idle_cpu = (cpu_seconds(gateway_pid) - cpu_start) / (time.monotonic() - at)
    held_rss = rss_mib(gateway_pid)
    print(
        f"  open: gateway RSS {held_rss:.1f} MiB (was {base_rss:.1f} MiB), "
        f"CPU while idle {idle_cpu * 100:.1f}% of a core",
        flush=True,
    )
    cpu_before, start = cpu_seconds(gateway_pid), time.monotonic()
    await asyncio.gather(*(client.cancel(v["name"]) for v in views))
    events = await asyncio.gather(*streams)
    answers = await asyncio.gather(*waits)
    took = time.monotonic() - start
    delivered = sum(1 for _, name in events if name == "Cancelled")
    done = sum(1 for _, view in answers if view["done"])
    print(
        f"  cancelled {tasks} tasks: {delivered}/{total} streams got the terminal event, "
        f"{done}/{total} waits answered done, in {took:.1f}s; gateway CPU "
        f"{cpu_seconds(gateway_pid) - cpu_before:.2f}s, total since start "
        f"{cpu_seconds(gateway_pid) - base_cpu:.2f}s; RSS {rss_mib(gateway_pid):.1f} MiB",
        flush=True,
    )


def cache_tasks_list(start: int, stop: int) -> dict[str, Any]:
    """A List of the tasks ``c-<start>`` to ``c-<stop - 1>`` in "bench-cache"."""
    items = [
        {
            "apiVersion": "asynctask.dev/v1alpha1",
            "kind": "AsyncTask",
            "metadata": {
                "name": f"c-{i:06d}",
                "namespace": "bench-cache",
                "labels": {"app": "bench", "batch": str(start)},
            },
            "spec": {
                "queue": "bench-cache",
                "timeoutSeconds": 600,
                "request": {"url": f"s3://bucket/images/{i:06d}.png", "sizes": [64, 128, 256]},
            },
        }
        for i in range(start, stop)
    ]
    return {"apiVersion": "v1", "kind": "List", "items": items}


def projection_size(cp: ControlPlane) -> None:
    """The cache's projection of the tasks in "bench-cache", built here and measured
    exactly (RSS also counts the allocator's slack and the decoding buffers of the list and
    watch)."""
    items = json.loads(
        cp.kubectl("get", "asynctasks", "-n", "bench-cache", "-o", "json", timeout=300).stdout
    )["items"]
    whole = len(json.dumps(items)) / len(items)
    tracemalloc.start()
    entries = [project(obj) for obj in items]
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"  the cache's projection (tracemalloc): {held / len(entries):.0f} B a task, "
        f"{held * 10_000 / len(entries) / 2**20:.1f} MiB per 10k tasks "
        f"(an object is {whole:.0f} B as JSON without managedFields)",
        flush=True,
    )


def cache_memory(cp: ControlPlane, base: str, gateway_pid: int, count: int) -> None:
    print(f"\n0. cache memory: {count} tasks in a namespace no operator serves", flush=True)

    def cached() -> float:
        with urllib.request.urlopen(f"{base}/metrics", timeout=10) as resp:
            text = resp.read().decode()
        line = next(x for x in text.splitlines() if x.startswith("asynctask_gateway_cache_tasks "))
        return float(line.split()[1])

    before_tasks, before = cached(), rss_mib(gateway_pid)
    for start in range(0, count, 1000):
        batch = cache_tasks_list(start, min(start + 1000, count))
        cp.kubectl("create", "-f", "-", "-o", "name", input=json.dumps(batch), timeout=300)
        print(f"  created {min(start + 1000, count)}/{count}", flush=True)
    wait_until("the cache to hold every task", lambda: cached() >= before_tasks + count, 120)
    after = rss_mib(gateway_pid)
    print(
        f"  gateway RSS {before:.1f} -> {after:.1f} MiB: "
        f"{(after - before) * 10_000 / count:.1f} MiB per 10k tasks "
        f"({(after - before) * 1024 * 1024 / count:.0f} B a task)",
        flush=True,
    )
    projection_size(cp)


def logged(log: Path, needle: str) -> Callable[[], bool]:
    return lambda: needle in log.read_text()


def token_for(cp: ControlPlane, namespace: str) -> str:
    cp.kubectl("create", "serviceaccount", "bench", "-n", namespace)
    cp.kubectl(
        "create",
        "role",
        "bench",
        "-n",
        namespace,
        "--resource=asynctasks",
        "--verb=get,list,watch,create,patch,delete",
    )
    cp.kubectl(
        "create",
        "rolebinding",
        "bench",
        "-n",
        namespace,
        "--role=bench",
        f"--serviceaccount={namespace}:bench",
    )
    return cp.kubectl("create", "token", "bench", "-n", namespace).stdout.strip()


async def run(args: argparse.Namespace, cp: ControlPlane, base: str, pid: int) -> None:
    os.environ["KUBECONFIG"] = str(cp.kubeconfig)  # this script's own watch: admin
    kube = Kube.from_environment()
    watch = TerminalWatch(kube, "bench")
    watch.task = asyncio.create_task(watch.run())
    client = Client(base, token_for(cp, "bench"), "bench")
    steps: list[Callable[[], Awaitable[None]]] = [
        lambda: post_latency(client, args.posts),
        lambda: delays(client, watch, args.delays),
        lambda: fanout(client, pid, args.fanout_tasks, args.per_task),
    ]
    try:
        # First, while the gateway's heap has not grown for anything else.
        cache_memory(cp, base, pid, args.cache_tasks)
        for step in steps:
            await step()
    finally:
        await client.session.close()
        watch.task.cancel()
        await kube.close()


def start_stack(logs: Path, env: dict[str, str], port: int) -> list[Proc]:
    """The operator (serving "bench"), an example worker and the gateway (serving "bench"
    and "bench-cache" on ``port``, with no per-user stream or wait limit that matters)."""
    python = sys.executable
    gateway_env = dict(
        env,
        ASYNCTASK_GATEWAY_PORT=str(port),
        ASYNCTASK_GATEWAY_ADDRESS="127.0.0.1",
        ASYNCTASK_GATEWAY_NAMESPACES="bench,bench-cache",
        ASYNCTASK_GATEWAY_MAX_STREAMS_PER_USER="100000",
        ASYNCTASK_GATEWAY_MAX_WAITS_PER_USER="100000",
    )
    commands = {
        "operator": (
            [python, "-m", "asynctask_operator", "--standalone", "--namespace", "bench"],
            env,
        ),
        "worker": (
            [python, "-m", "asynctask_worker", "example_tasks:app", "--concurrency", "8"],
            env,
        ),
        "gateway": ([python, "-m", "asynctask_gateway"], gateway_env),
    }
    procs: list[Proc] = []
    for name, (args, proc_env) in commands.items():
        logfile = logs / f"{name}.log"
        procs.append((name, spawn(args, logfile, proc_env), logfile))
    return procs


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--posts", type=int, default=200)
    parser.add_argument("--delays", type=int, default=40)
    parser.add_argument("--fanout-tasks", type=int, default=100)
    parser.add_argument("--per-task", type=int, default=10)
    parser.add_argument("--cache-tasks", type=int, default=10_000)
    args = parser.parse_args()
    with ControlPlane() as cp, RabbitMQ() as rmq:
        env = dict(
            cp.env(),
            ASYNCTASK_AMQP_URL=rmq.url,
            ASYNCTASK_WORKER_AMQP_URL=rmq.url,
            PYTHONPATH=str(REPO / "examples"),
        )
        cp.install_crd(REPO / "deploy/crds/asynctask.dev_asynctasks.yaml")
        for ns in ("bench", "bench-cache"):
            cp.kubectl("create", "namespace", ns)
        assert cp.workdir is not None
        logs, port = cp.workdir, free_port()
        base = f"http://127.0.0.1:{port}"
        procs: list[Proc] = []
        try:
            procs = start_stack(logs, env, port)
            for name, needle in (
                ("operator", "connected to RabbitMQ"),
                ("worker", "serving"),
                ("gateway", "serving on"),
            ):
                wait_until(name, logged(logs / f"{name}.log", needle), 60, procs)
            pid = procs[2][1].pid
            print(f"stack up; gateway pid {pid}, RSS {rss_mib(pid):.1f} MiB", flush=True)
            asyncio.run(run(args, cp, base, pid))
        finally:
            for _, proc, _ in reversed(procs):
                stop(proc)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
