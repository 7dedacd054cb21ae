"""The stack a benchmark runs against: control plane, RabbitMQ, the operator, workers.

Every part is the real one, started by the test bed's launchers, as ``make dev`` does. The
operator serves its metrics (tracked tasks, pending deadlines) so a benchmark can see what
it holds without asking it anything else.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

from testbed._proc import free_port, spawn, stop, wait_until
from testbed.controlplane import REPO, ControlPlane
from testbed.rabbitmq import RabbitMQ

NAMESPACES = ("bench", "ceiling", "scale")


def load() -> str:
    """The load average, to print next to every figure (the machine is shared)."""
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """A process's resident memory (VmHWM: its peak)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


class Stack:
    def __init__(self) -> None:
        self._exit = ExitStack()
        self.cp = ControlPlane()
        self.rmq = RabbitMQ()
        self.operator: subprocess.Popen[bytes] | None = None
        self.workers: list[subprocess.Popen[bytes]] = []
        self.metrics_port = free_port()
        self.logs = Path()
        self.env: dict[str, str] = {}

    def __enter__(self) -> Stack:
        self._exit.enter_context(self.cp)
        self._exit.enter_context(self.rmq)
        assert self.cp.workdir is not None
        self.logs = self.cp.workdir
        self.env = dict(
            self.cp.env(),
            ASYNCTASK_AMQP_URL=self.rmq.url,
            ASYNCTASK_WORKER_AMQP_URL=self.rmq.url,
            ASYNCTASK_METRICS_PORT=str(self.metrics_port),
            PYTHONPATH=os.pathsep.join(
                [str(REPO / "examples"), *os.environ.get("PYTHONPATH", "").split(os.pathsep)]
            ).rstrip(os.pathsep),
        )
        self.cp.install_crd(REPO / "deploy/crds/asynctask.dev_asynctasks.yaml")
        self.cp.install_crd(REPO / "deploy/crds/asynctask.dev_asyncqueues.yaml")
        for namespace in NAMESPACES:
            self.cp.kubectl("create", "namespace", namespace)
        return self

    def __exit__(self, *_: object) -> None:
        for worker in self.workers:
            stop(worker)
        if self.operator is not None:
            stop(self.operator)
        self._exit.close()

    def start_operator(self) -> subprocess.Popen[bytes]:
        log = self.logs / "operator.log"
        mark = log.stat().st_size if log.exists() else 0
        self.operator = spawn(
            [sys.executable, "-m", "asynctask_operator", "--standalone"], log, self.env
        )
        procs = [("operator", self.operator, log)]
        wait_until(
            "operator", lambda: "connected to RabbitMQ" in log.read_text()[mark:], 120, procs
        )
        return self.operator

    def stop_operator(self) -> None:
        assert self.operator is not None
        stop(self.operator, timeout=30)
        self.operator = None

    def start_worker(self, concurrency: int) -> None:
        log = self.logs / f"worker-{len(self.workers)}.log"
        worker = spawn(
            [
                sys.executable,
                "-m",
                "asynctask_worker",
                "example_tasks:app",
                "--concurrency",
                str(concurrency),
            ],
            log,
            self.env,
        )
        self.workers.append(worker)
        wait_until("worker", lambda: "serving" in log.read_text(), 60, [("worker", worker, log)])

    def stop_workers(self) -> None:
        for worker in self.workers:
            stop(worker)
        self.workers.clear()

    def control_plane_pids(self) -> dict[str, list[int]]:
        """The apiserver's and etcd's processes (CPU accounting, ``cpu.Meter``)."""
        pids = self.cp.pids()
        return {name: [pids[name]] for name in ("kube-apiserver", "etcd") if name in pids}

    def component_pids(self) -> dict[str, list[int]]:
        """Every component a task's path crosses, and the controller manager (which is
        no part of it, shown apart)."""
        out = self.control_plane_pids()
        out["operator"] = [self.operator.pid] if self.operator is not None else []
        out["worker"] = [w.pid for w in self.workers]
        out["RabbitMQ"] = [self.rmq.pid] if self.rmq.pid is not None else []
        if "kube-controller-manager" in self.cp.pids():
            out["kube-controller-manager"] = [self.cp.pids()["kube-controller-manager"]]
        return out

    def metrics_text(self) -> str | None:
        """The operator's metrics page (None if it does not answer)."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
            ) as resp:
                text: str = resp.read().decode()
        except OSError:
            return None
        return text

    def operator_metric(self, name: str) -> float:
        """One unlabelled series of the operator's metrics (NaN if it does not answer)."""
        text = self.metrics_text()
        if text is None:
            return float("nan")
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        return float("nan")

    def operator_metric_sum(self, name: str, leave_out: str = "") -> float:
        """A labelled series of the operator's metrics summed over its labels, leaving out
        the lines that contain ``leave_out`` (NaN if it does not answer)."""
        text = self.metrics_text()
        if text is None:
            return float("nan")
        return sum(
            float(line.split()[-1])
            for line in text.splitlines()
            if line.startswith(name + "{") and not (leave_out and leave_out in line)
        )

    def status_writes(self, namespace: str) -> collections.Counter[int]:
        """How many tasks got 1, 2, 3... status writes (the apiserver's audit log)."""
        per_task: collections.Counter[str] = collections.Counter()
        creates: set[str] = set()
        for w in self.cp.writes(namespace):
            if w["resource"] != "asynctasks":
                continue
            if w["verb"] == "create":
                creates.add(str(w["name"]))
            elif w["subresource"] == "status":
                per_task[str(w["name"])] += 1
        return collections.Counter(per_task[name] for name in creates)


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def audit_latencies(audit_log: Path, namespace: str) -> tuple[list[float], list[float]]:
    """create→Processing and create→terminal per task, from the apiserver's own clock
    (the audit log, microseconds), not from when a watch delivered the change: on a loaded
    machine watch delivery lags. A task's last status write is its terminal one (no
    webhook, no progress write for a no-op task); with three writes the second one is
    Processing, with two the start was folded into the terminal write, with one the Pending
    record was folded into it as well."""
    created: dict[str, float] = {}
    writes: dict[str, list[float]] = collections.defaultdict(list)
    for line in audit_log.read_text().splitlines():
        event = json.loads(line)
        ref = event.get("objectRef") or {}
        if (
            ref.get("namespace") != namespace
            or ref.get("resource") != "asynctasks"
            or event.get("stage") != "ResponseComplete"
        ):
            continue
        if event["verb"] == "create":
            created[ref["name"]] = _stamp(event["stageTimestamp"])
        elif ref.get("subresource") == "status":
            writes[ref["name"]].append(_stamp(event["stageTimestamp"]))
    started, done = [], []
    for name, at in created.items():
        mine = writes.get(name, [])
        if mine:  # with one write (Pending folded into the end too) it is all three
            started.append(mine[min(1, len(mine) - 1)] - at)
            done.append(mine[-1] - at)
    return sorted(started), sorted(done)


def describe(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))


def now() -> float:
    return time.monotonic()
