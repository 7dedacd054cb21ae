"""Benchmark: large payloads end to end next to the object store's own rate (issue 24).

    PYTHONPATH=hack:bench .venv/bin/python bench/payloads.py [--tasks 200] [--mib 1]

One stack (control plane, RabbitMQ, the operator as ``stack.py`` starts it) and a private
S3 server (versitygw, ``hack/testbed/s3.py``); the operator gets the store's settings and
keys, the worker (``payload_tasks.py``: returns its request) none. Then, in this order:

1. **raw**: ``--tasks`` objects of ``--mib`` MiB PUT, then GET, with boto3 and ``--parallel``
   threads: the store's own upload+download rate on this machine, now;
2. **end to end**: per task, the request uploaded (boto3 PUT to an upload key), the AsyncTask
   created with ``spec.requestRef`` (the Kubernetes API), the worker's streamed GET and PUT
   through its presigned URLs, ``status.resultRef`` seen Succeeded, the result downloaded and
   its sha256 checked: tasks/s and MiB/s (MiB of requests and results, one each per task);
3. **raw** again (the machine is shared: the two raw runs bracket the end-to-end one).

Per task the store moves the payload four times (producer PUT, worker GET, worker PUT,
reader GET), a raw round trip twice: the ratio of end-to-end MiB/s to raw MiB/s says how
much of the store's rate the system keeps.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from stack import Stack, load

from asynctask_worker.payloads import BINARY_CONTENT_TYPE, DEFAULT_PREFIX, upload_key
from testbed._proc import spawn, stop, wait_until
from testbed.controlplane import REPO
from testbed.s3 import S3Server

QUEUE = "bench.payload-echo"
NAMESPACE = "bench"
BUCKET = "bench-payloads"
GROUP, VERSION, PLURAL = "asynctask.dev", "v1alpha1", "asynctasks"
MIB = 1024 * 1024


def payload(i: int, base: bytes) -> bytes:
    """The i-th request: one random block made once, stamped with i (distinct sha256s)."""
    return i.to_bytes(8, "big") + base[8:]


def timed(parallel: int, jobs: list[Callable[[], Any]]) -> tuple[float, list[Any]]:
    start = time.monotonic()
    with ThreadPoolExecutor(parallel) as pool:
        out = list(pool.map(lambda job: job(), jobs))
    return time.monotonic() - start, out


def raw(s3: S3Server, tasks: int, base: bytes, parallel: int) -> float:
    """PUT then GET ``tasks`` objects; the MiB/s of both together."""
    client = s3.client()
    keys = [f"raw/{uuid.uuid4().hex}" for _ in range(tasks)]
    put, _ = timed(
        parallel,
        [
            lambda k=k, i=i: client.put_object(Bucket=BUCKET, Key=k, Body=payload(i, base))
            for i, k in enumerate(keys)
        ],
    )
    got, bodies = timed(
        parallel,
        [lambda k=k: len(client.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys],
    )
    assert sum(bodies) == tasks * len(base)
    client.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": k} for k in keys]})
    mib = tasks * len(base) / MIB
    rate = 2 * mib / (put + got)
    print(
        f"raw: {tasks} x {len(base) / MIB:g} MiB PUT in {put:.1f}s ({mib / put:.1f} MiB/s), "
        f"GET in {got:.1f}s ({mib / got:.1f} MiB/s): {rate:.1f} MiB/s up+down, "
        f"{2 * tasks / (put + got):.1f} requests/s ({load()})",
        flush=True,
    )
    return rate


def submit(s3: Any, api: Any, i: int, base: bytes) -> str:
    """Upload the i-th request, then create its task with the reference; its sha256."""
    body = payload(i, base)
    digest = hashlib.sha256(body).hexdigest()
    key = upload_key(DEFAULT_PREFIX, NAMESPACE)
    s3.put_object(Bucket=BUCKET, Key=key, Body=body, ContentType=BINARY_CONTENT_TYPE)
    ref = {"bucket": BUCKET, "key": key, "size": len(body), "contentType": BINARY_CONTENT_TYPE}
    task = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "AsyncTask",
        "metadata": {"name": f"payload-{i:05d}"},
        "spec": {"queue": QUEUE, "requestRef": dict(ref, sha256=digest)},
    }
    api.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL, task)
    return digest


def fetch(s3: Any, ref: dict[str, Any]) -> str:
    """Download a stored result, streaming; its sha256."""
    body = s3.get_object(Bucket=ref["bucket"], Key=ref["key"])["Body"]
    digest = hashlib.sha256()
    for chunk in iter(lambda: body.read(MIB), b""):
        digest.update(chunk)
    return digest.hexdigest()


def end_to_end(stack: Stack, s3: S3Server, tasks: int, base: bytes, parallel: int) -> float:
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(str(stack.cp.kubeconfig)))
    store = s3.client()
    start = time.monotonic()
    took, digests = timed(parallel, [lambda i=i: submit(store, api, i, base) for i in range(tasks)])
    print(f"  {tasks} requests uploaded and tasks created in {took:.1f}s", flush=True)
    items: list[dict[str, Any]] = []

    def all_done() -> bool:
        nonlocal items
        items = api.list_namespaced_custom_object(GROUP, VERSION, NAMESPACE, PLURAL)["items"]
        ended = [t for t in items if t.get("status", {}).get("phase") in TERMINAL]
        return len(ended) == tasks

    wait_until(f"{tasks} payload tasks to end", all_done, 1800, [], interval=0.5)
    ended = time.monotonic() - start
    phases = sorted({t["status"]["phase"] for t in items})
    assert phases == ["Succeeded"], [
        t["status"] for t in items if t["status"]["phase"] != "Succeeded"
    ][:3]
    print(f"  all {tasks} Succeeded after {ended:.1f}s", flush=True)
    refs = {t["metadata"]["name"]: t["status"]["resultRef"] for t in items}
    assert all("result" not in t["status"] for t in items)
    _, got = timed(
        parallel, [lambda r=refs[f"payload-{i:05d}"]: fetch(store, r) for i in range(tasks)]
    )
    total = time.monotonic() - start
    assert got == digests, "a result differs from its request"
    mib = 2 * tasks * len(base) / MIB
    print(
        f"end to end: {tasks} tasks of {len(base) / MIB:g} MiB (upload, create, worker GET+PUT, "
        f"Succeeded, download checked) in {total:.1f}s: {tasks / total:.1f} tasks/s, "
        f"{mib / total:.1f} MiB/s of requests+results ({load()})",
        flush=True,
    )
    return mib / total


TERMINAL = {"Succeeded", "Failed", "Error", "Cancelled", "TimedOut"}


def start_worker(stack: Stack, concurrency: int) -> Any:
    log = stack.logs / "payload-worker.log"
    env = dict(
        stack.env,
        PYTHONPATH=os.pathsep.join([str(REPO / "bench"), stack.env.get("PYTHONPATH", "")]),
        ASYNCTASK_WORKER_CONCURRENCY=str(concurrency),
    )
    worker = spawn([sys.executable, "-m", "asynctask_worker", "payload_tasks:app"], log, env)
    wait_until("worker", lambda: "serving" in log.read_text(), 60, [("worker", worker, log)])
    return worker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--mib", type=float, default=1.0, help="size of a request")
    parser.add_argument("--parallel", type=int, default=8, help="client threads")
    parser.add_argument("--concurrency", type=int, default=8, help="worker concurrency")
    args = parser.parse_args()
    base = os.urandom(int(args.mib * MIB))
    with Stack() as stack, S3Server() as s3:
        s3.create_bucket(BUCKET)
        workers_env = stack.env
        stack.env = dict(stack.env, **s3.env(BUCKET))  # the operator's only
        stack.start_operator()
        stack.env = workers_env
        worker = start_worker(stack, args.concurrency)
        try:
            before = raw(s3, args.tasks, base, args.parallel)
            e2e = end_to_end(stack, s3, args.tasks, base, args.parallel)
            after = raw(s3, args.tasks, base, args.parallel)
        finally:
            stop(worker)
        best = max(before, after)
        print(
            f"end-to-end / raw: {e2e:.1f} / {best:.1f} MiB/s = {e2e / best:.0%} "
            f"(raw before {before:.1f}, after {after:.1f}; the store moves each task's "
            f"payload 4 times, a raw round trip 2)"
        )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
