"""What a status write costs the apiserver, and why (issue 26): the apiserver alone (a
control plane of the test bed, nothing else running) taking creates, then creates and
status writes of one kind each, with its and etcd's CPU per write; optionally its own CPU
profile (``/debug/pprof``, the test bed's opt-in ``ASYNCTASK_TESTBED_APISERVER_PROFILING=1``)
over one kind's run, read with ``go tool pprof -top``.

Kinds (each in a namespace of its own, --tasks objects, --writes status writes each):

* ``create``: creates only (the base every other line subtracts);
* ``json``: the operator's write: a JSON patch testing ``/metadata/uid`` and adding ``/status``;
* ``merge``: the same status as a merge patch (``{"status": ...}``);
* ``json-nocel``: the JSON patch with the CRD's ``x-kubernetes-validations`` removed
  (re-applied before, restored after: only for measuring);
* ``json-small``: the JSON patch with a status of phase and observedGeneration only (what
  the object's size costs);
* ``json-atomic``: the JSON patch with ``status`` marked ``x-kubernetes-map-type: atomic`` in
  the CRD (managedFields then own ``f:status`` whole, not every field under it; the CRD
  has it since round 6, so with it ``json`` is the same);
* ``json-perfield``: the JSON patch with that mark removed (the CRD before round 6:
  managedFields list every field under ``status``);
* ``schedule``: AsyncTaskSchedules instead of tasks (--tasks of them, created suspended),
  each given --writes status writes shaped like the schedule controller's (one a run: the
  slot advanced, one active task), the same JSON patch; ``schedule-atomic`` with the
  schedule CRD's ``status`` marked atomic, ``schedule-perfield`` with that mark removed
  (issue 21: what a run's schedule status write costs); ``schedule-create``: the schedules'
  creates only, the base the schedule kinds subtract.

    PYTHONPATH=hack:bench .venv/bin/python bench/apiprof.py --tasks 500 --profile json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import cpu
import yaml
from ceiling import NOOP, statuses
from kubeapi import GROUP_VERSION, KubeApi
from stack import load

from testbed.controlplane import PROFILING_ENV, REPO, ControlPlane

CRD = REPO / "deploy/crds/asynctask.dev_asynctasks.yaml"
SCHEDULE_CRD = REPO / "deploy/crds/asynctask.dev_asynctaskschedules.yaml"
KINDS = ("create", "json", "merge", "json-nocel", "json-small", "json-atomic", "json-perfield")
SCHEDULE_KINDS = ("schedule-create", "schedule", "schedule-atomic", "schedule-perfield")
SCHEDULES = "asynctaskschedules"


def writer(kind: str) -> Callable[[KubeApi, str, str, str, dict[str, Any]], Awaitable[Any]]:
    if kind == "merge":
        return lambda api, ns, name, uid, status: api.merge_status(ns, name, status)
    if kind == "json-small":

        async def small(api: KubeApi, ns: str, name: str, uid: str, status: dict[str, Any]) -> Any:
            lean = {"phase": status["phase"], "observedGeneration": 1}
            return await api.replace_status(ns, name, uid, lean)

        return small
    return lambda api, ns, name, uid, status: api.replace_status(ns, name, uid, status)


def schedule_statuses(count: int) -> list[dict[str, Any]]:
    """``count`` status writes of one schedule as its controller makes them, one a run
    (``schedules/runs.py`` ``status``): the slot and the next one advance, one task active,
    Ready and Stalled conditions."""
    out = []
    for i in range(count):
        slot = f"2026-12-06T00:{i // 6:02d}:{i % 6 * 10:02d}Z"
        nxt = f"2026-12-06T00:{(i + 1) // 6:02d}:{(i + 1) % 6 * 10:02d}Z"
        out.append(
            {
                "observedGeneration": 1,
                "lastScheduleTime": slot,
                "lastSuccessfulTime": "2026-12-06T00:00:00Z",
                "nextScheduleTime": nxt,
                "missedCount": 0,
                "skippedCount": 0,
                "active": [{"name": f"s-{i}", "uid": "00000000-0000-0000-0000-000000000000"}],
                "activeCount": 1,
                "conditions": [
                    {
                        "type": kind,
                        "status": flag,
                        "reason": "Scheduled",
                        "message": text,
                        "lastTransitionTime": "2026-12-06T00:00:00Z",
                        "observedGeneration": 1,
                    }
                    for kind, flag, text in (
                        ("Ready", "True", "slots are served"),
                        ("Stalled", "False", "the schedule is served"),
                    )
                ],
            }
        )
    return out


async def create_schedule(api: KubeApi, namespace: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": GROUP_VERSION,
        "kind": "AsyncTaskSchedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"intervalSeconds": 10, "suspend": True, "template": {"spec": NOOP}},
    }
    url = f"{api.server}/apis/{GROUP_VERSION}/namespaces/{namespace}/{SCHEDULES}"
    return await api._send("POST", url, body)


async def write_schedule(
    api: KubeApi, namespace: str, name: str, uid: str, status: dict[str, Any]
) -> Any:
    """The controller's write (``replace_status_of``): a JSON patch testing the uid."""
    url = f"{api.server}/apis/{GROUP_VERSION}/namespaces/{namespace}/{SCHEDULES}/{name}/status"
    patch = [
        {"op": "test", "path": "/metadata/uid", "value": uid},
        {"op": "add", "path": "/status", "value": status},
    ]
    return await api._send("PATCH", url, patch, "application/json-patch+json")


async def run(
    cp: ControlPlane, kind: str, name: str, tasks: int, writes: int, connections: int
) -> float:
    """One kind's run; returns the apiserver + etcd CPU ms per task."""
    if kind in SCHEDULE_KINDS:
        return await run_schedules(cp, kind, name, tasks, writes, connections)
    namespace = f"prof-{name}"
    cp.kubectl("create", "namespace", namespace)
    pids = cp.pids()
    meter = cpu.Meter({n: [pids[n]] for n in ("kube-apiserver", "etcd")})
    write = writer(kind)
    queued = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    bodies = statuses(writes if kind != "create" else 0, queued)
    async with KubeApi(cp.kubeconfig, connections) as api:
        sem = asyncio.Semaphore(connections)

        async def one(i: int) -> None:
            async with sem:
                name = f"t-{i:06d}"
                obj = await api.create_task(namespace, name, NOOP)
                for status in bodies:
                    await write(api, namespace, name, obj["metadata"]["uid"], status)

        meter.start()
        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(tasks)))
        took = time.monotonic() - start
        used = meter.stop()
        sample = await api.get_task(namespace, "t-000000")
        await api.delete_all(namespace)
    ms = sum(used.values()) * 1000 / tasks
    print(
        f"{kind:<11} {tasks} tasks x (create + {len(bodies)} writes) in {took:5.1f}s "
        f"({tasks / took:6.1f} tasks/s): apiserver {used['kube-apiserver'] * 1000 / tasks:6.2f}"
        f" + etcd {used['etcd'] * 1000 / tasks:5.2f} = {ms:6.2f} CPU ms/task; object "
        f"{len(json.dumps(sample))} bytes, managedFields "
        f"{len(json.dumps(sample['metadata'].get('managedFields', [])))} ({load()})",
        flush=True,
    )
    return ms


async def run_schedules(
    cp: ControlPlane, kind: str, name: str, count: int, writes: int, connections: int
) -> float:
    """A schedule kind's run; returns the apiserver + etcd CPU ms per schedule."""
    namespace = f"prof-{name}"
    cp.kubectl("create", "namespace", namespace)
    pids = cp.pids()
    meter = cpu.Meter({n: [pids[n]] for n in ("kube-apiserver", "etcd")})
    bodies = schedule_statuses(writes if kind != "schedule-create" else 0)
    base = f"/apis/{GROUP_VERSION}/namespaces/{namespace}/{SCHEDULES}"
    async with KubeApi(cp.kubeconfig, connections) as api:
        sem = asyncio.Semaphore(connections)

        async def one(i: int) -> None:
            async with sem:
                obj = await create_schedule(api, namespace, f"s-{i:06d}")
                for status in bodies:
                    await write_schedule(
                        api, namespace, f"s-{i:06d}", obj["metadata"]["uid"], status
                    )

        meter.start()
        start = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(count)))
        took = time.monotonic() - start
        used = meter.stop()
        sample = await api._send("GET", f"{api.server}{base}/s-000000")
        await api._send("DELETE", f"{api.server}{base}")
    ms = sum(used.values()) * 1000 / count
    print(
        f"{kind:<11} {count} schedules x (create + {len(bodies)} writes) in {took:5.1f}s: "
        f"apiserver {used['kube-apiserver'] * 1000 / count:6.2f} + etcd "
        f"{used['etcd'] * 1000 / count:5.2f} = {ms:6.2f} CPU ms/schedule; object "
        f"{len(json.dumps(sample))} bytes, managedFields "
        f"{len(json.dumps(sample['metadata'].get('managedFields', [])))} ({load()})",
        flush=True,
    )
    return ms


def crd_variant(manifest: Path, kind: str, folder: Path) -> Path | None:
    """The CRD a kind runs with, if not the given one: ``json-nocel`` without any
    ``x-kubernetes-validations``; ``json-atomic`` with ``status`` atomic, ``json-perfield``
    without that."""
    if kind not in ("json-nocel", "json-atomic", "json-perfield", *SCHEDULE_KINDS[2:]):
        return None
    if kind in SCHEDULE_KINDS:
        manifest = SCHEDULE_CRD
    crd = yaml.safe_load(manifest.read_text())

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items() if k != "x-kubernetes-validations"}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    if kind == "json-nocel":
        crd = strip(crd)
    for version in crd["spec"]["versions"]:
        status = version["schema"]["openAPIV3Schema"]["properties"]["status"]
        if kind in ("json-atomic", "schedule-atomic"):
            status["x-kubernetes-map-type"] = "atomic"
        elif kind in ("json-perfield", "schedule-perfield"):
            status.pop("x-kubernetes-map-type", None)
    out = folder / f"crd-{kind}.json"
    out.write_text(json.dumps(crd))
    return out


def profile_during(cp: ControlPlane, seconds: int, out: Path) -> threading.Thread:
    def take() -> None:
        out.write_bytes(cp.cpu_profile(seconds))

    thread = threading.Thread(target=take, daemon=True)
    thread.start()
    return thread


def top(profile: Path, lines: int) -> str:
    args = ["go", "tool", "pprof", "-top", f"-nodecount={lines}"]
    flat = subprocess.run([*args, str(profile)], capture_output=True, text=True, check=False)
    cum = subprocess.run([*args, "-cum", str(profile)], capture_output=True, text=True, check=False)
    return flat.stdout + flat.stderr + "\n--- by cumulative ---\n" + cum.stdout


def summary(results: dict[str, list[float]], writes: int) -> None:
    """Each kind's CPU ms a task per round, and per status write (the creates subtracted)."""
    for kind, runs in results.items():
        base = results.get("schedule-create" if kind in SCHEDULE_KINDS else "create")
        line = f"{kind:<11} CPU ms/task (apiserver + etcd): " + ", ".join(f"{m:.2f}" for m in runs)
        if base is not None and not kind.endswith("create") and writes:
            per = [(m - b) / writes for m, b in zip(runs, base, strict=False)]
            line += "; per status write: " + ", ".join(f"{m:.2f}" for m in per)
        print(line, flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--writes", type=int, default=3, help="status writes a task")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--kinds", default=",".join(KINDS), help=f"of {KINDS + SCHEDULE_KINDS}")
    parser.add_argument("--profile", default="", help="kinds to profile, a,b")
    parser.add_argument("--profile-seconds", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=1, help="the kinds again, in order")
    parser.add_argument("--out", type=Path, default=Path("apiprof-out"), help="profiles, CRDs")
    parser.add_argument("--crd", type=Path, default=CRD)
    args = parser.parse_args()
    if args.profile:
        os.environ[PROFILING_ENV] = "1"
    args.out.mkdir(exist_ok=True)
    with ControlPlane() as cp:
        cp.install_crd(args.crd)
        cp.install_crd(SCHEDULE_CRD)
        results: dict[str, list[float]] = {}
        for round_ in range(args.rounds):
            for kind in args.kinds.split(","):
                variant = crd_variant(args.crd, kind, args.out)
                if variant is not None:
                    cp.install_crd(variant)
                thread = None
                name = f"{kind}-{round_}"
                if kind in args.profile.split(",") and round_ == 0:
                    thread = profile_during(cp, args.profile_seconds, args.out / f"{kind}.pprof")
                ms = asyncio.run(run(cp, kind, name, args.tasks, args.writes, args.connections))
                results.setdefault(kind, []).append(ms)
                if thread is not None:
                    thread.join()
                    print(top(args.out / f"{kind}.pprof", 45), flush=True)
                if variant is not None:
                    cp.install_crd(SCHEDULE_CRD if kind in SCHEDULE_KINDS else args.crd)
        summary(results, args.writes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
