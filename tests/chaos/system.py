"""The chaos scenarios' system: an operator and workers (processes) on the 3-node cluster,
a namespace and a virtual host of their own, the faults, and the figures.

The scenarios of a module share one system (starting an operator and four workers takes
a while); each scenario counts only its own tasks (:meth:`ChaosSystem.begin`).

Faults are injected when the burst has reached a given point (a number of tasks
terminal), never after a sleep; the only sleeps are the outages themselves.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asynctask_worker import topology
from testbed import ControlPlane, RabbitMQ, RabbitMQCluster, probes
from testbed._proc import free_port, wait_until
from tests.chaos.history import PhaseWatch, Summary, summary
from tests.e2e.system import Process, operator_ready, worker_ready

QUEUE = "chaos"
TASK_QUEUE = topology.task_queue_name(QUEUE)
#: Every task is done within this long after the last fault: a bound on being stuck, far
#: above what the work takes (a correctness bound, not a timing).
SETTLE_SECONDS = 240


@dataclass
class Figures:
    """What a scenario prints (and asserts on, for the correctness bounds)."""

    scenario: str
    tasks: int = 0
    worker_kills: int = 0
    operator_restarts: int = 0
    node_kills: list[str] = field(default_factory=list)
    apiserver_outages: list[float] = field(default_factory=list)
    interrupted: int = 0  # deliveries a fault may have cut short (each may run again)
    #: task messages that may be in the queue twice: publishes the operator did again after
    #: a lost confirm, and tasks an operator killed before it recorded them Pending
    republished: int = 0
    executions: int = 0
    reruns: int = 0  # executions beyond the first of a task
    duplicates: int = 0  # of which: the same attempt run again (a message there twice)
    #: RabbitMQ's redelivery counts per queue (None: its statistics were reset meanwhile,
    #: which a node's death does to the queues it led)
    redeliveries: dict[str, int | None] = field(default_factory=dict)
    catch_up_seconds: list[float] = field(default_factory=list)
    result: Summary | None = None

    def line(self) -> str:
        r = self.result
        assert r is not None
        return (
            f"[chaos] {self.scenario}: tasks={self.tasks} terminal={r.terminal} "
            f"lost={len(r.lost)} double_terminal={len(r.double_terminal)} "
            f"worker_kills={self.worker_kills} operator_restarts={self.operator_restarts} "
            f"node_kills={self.node_kills} apiserver_outages_s={self.apiserver_outages} "
            f"interrupted={self.interrupted} republished<={self.republished} "
            f"executions={self.executions} reruns={self.reruns} "
            f"(same attempt again: {self.duplicates}) redeliveries={self.redeliveries} "
            f"catch_up_s={[round(s, 1) for s in self.catch_up_seconds]}"
        )


class ChaosSystem:
    """Operator + ``workers`` worker processes (concurrency 1: a kill cuts one task short
    at most) against ``cluster``, serving ``namespace`` in a virtual host of its own."""

    def __init__(
        self,
        cp: ControlPlane,
        cluster: RabbitMQCluster,
        namespace: str,
        workdir: Path,
        *,
        workers: int = 4,
    ) -> None:
        self.cp, self.cluster, self.namespace = cp, cluster, namespace
        self.vhost = f"chaos-{namespace}"
        self.url = cluster.add_vhost(self.vhost)
        self.executions_dir = workdir / "executions"
        self.executions_dir.mkdir()
        self.workdir = workdir
        self.env = dict(
            cp.env(),
            ASYNCTASK_AMQP_URL=self.url,
            ASYNCTASK_WORKER_AMQP_URL=self.url,
            CHAOS_EXECUTIONS=str(self.executions_dir),
            ASYNCTASK_METRICS_PORT=str(free_port()),
            ASYNCTASK_METRICS_ADDRESS="127.0.0.1",
        )
        self.operator = self._start_operator()
        self.workers: list[Process] = []
        self.operator.wait_ready(60)
        self.worker_metrics: list[str] = []
        for i in range(workers):
            self.workers.append(self._start_worker(i))
        for w in self.workers:
            w.wait_ready(60)
        self.watch = PhaseWatch(cp.etcd_url, namespace).start()
        self.names: list[str] = []  # the current scenario's tasks
        self.uids: set[str] = set()
        self._uid_of: dict[str, str] = {}  # name -> uid of this scenario's tasks
        self.killed_in_window: set[str] = set()  # at the latest operator kill
        self._created = 0
        self._redelivered: dict[str, int] = {}
        self._retries = 0.0
        self.operator_metrics = probes.metrics_url(int(self.env["ASYNCTASK_METRICS_PORT"]))

    def _start_operator(self) -> Process:
        live = free_port()
        return Process(
            "operator",
            [
                sys.executable,
                "-m",
                "asynctask_operator",
                "--standalone",
                "--namespace",
                self.namespace,
                "--liveness",
                probes.liveness_url(live),
            ],
            self.env,
            self.workdir,
            operator_ready(live),
        )

    def _start_worker(self, i: int) -> Process:
        """Worker ``i``; its metrics URL is added to :attr:`worker_metrics`."""
        port = free_port()
        self.worker_metrics.append(probes.metrics_url(port))
        # Each worker tries the nodes from a different one, as a load balancer in front of
        # the cluster would spread them: a node's death cuts some of them.
        urls = self.url.split(",")
        start = i % len(urls)
        return Process(
            f"worker-{i}",
            [
                sys.executable,
                "-m",
                "asynctask_worker",
                "tests.chaos.chaos_app:app",
                "--concurrency",
                "1",
                "--queues",
                QUEUE,
                "--metrics-port",
                str(port),
            ],
            dict(self.env, ASYNCTASK_WORKER_AMQP_URL=",".join(urls[start:] + urls[:start])),
            self.workdir,
            worker_ready(port),
        )

    def begin(self, scenario: str) -> Figures:
        """Start counting a scenario: its tasks, executions and redeliveries only. The
        cluster is whole again (a node killed before is back)."""
        for node in self.cluster.nodes:
            if node._proc is None:
                self.cluster.restart(node)
        self.names, self.uids, self._uid_of = [], set(), {}
        self._redelivered = self.redeliveries()
        self._retries = self.publish_retries()
        return Figures(scenario)

    # work ---------------------------------------------------------------------------

    def submit(self, n: int, sleep: float = 0.1) -> None:
        """Create ``n`` tasks in one request (a List), each sleeping ``sleep`` seconds."""
        items = [
            {
                "apiVersion": "asynctask.dev/v1alpha1",
                "kind": "AsyncTask",
                "metadata": {"name": f"c-{i:04d}", "namespace": self.namespace},
                "spec": {"queue": QUEUE, "request": {"sleep": sleep, "n": i}},
            }
            for i in range(self._created, self._created + n)
        ]
        self._created += n
        out = self.cp.kubectl(
            "create",
            "-o",
            "json",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
            timeout=120,
        ).stdout
        created, decoder, at = [], json.JSONDecoder(), 0  # one JSON document per object
        while at < len(out.rstrip()):
            obj, at = decoder.raw_decode(out, at)
            created.append(obj)
            at += len(out[at:]) - len(out[at:].lstrip())
        self.names += [c["metadata"]["name"] for c in created]
        self.uids |= {c["metadata"]["uid"] for c in created}
        self._uid_of.update((c["metadata"]["name"], c["metadata"]["uid"]) for c in created)

    def terminal(self) -> int:
        return self.watch.terminal(self.names)

    def wait_terminal(self, count: int, timeout: float = SETTLE_SECONDS) -> float:
        """Until ``count`` tasks are terminal; the seconds it took."""
        return wait_until(
            f"{count} of {len(self.names)} tasks terminal",
            lambda: self.terminal() >= count,
            timeout,
            [(p.name, p.proc, p.log) for p in [self.operator, *self.workers]],
            interval=0.1,
        )

    def wait_executed(self, count: int, timeout: float = SETTLE_SECONDS) -> None:
        """Until handlers have started ``count`` executions of this scenario's tasks.
        Workers may run ahead of the operator's status writes: a fault meant to cut work
        short waits on executions, not on terminal phases."""
        wait_until(
            f"{count} executions started",
            lambda: sum(1 for uid, _ in self.executions() if uid in self.uids) >= count,
            timeout,
            [(p.name, p.proc, p.log) for p in [self.operator, *self.workers]],
            interval=0.05,
        )

    # faults ---------------------------------------------------------------------------

    def busy_worker(self) -> int | None:
        """A worker running a handler now (its in-flight gauge says so), if any."""
        for i, url in enumerate(self.worker_metrics):
            if probes.metric(url, "asynctask_worker_tasks_in_flight", queue=QUEUE) == 1:
                return i
        return None

    def executed(self) -> int:
        """Tasks of this scenario that some handler has started."""
        return len({uid for uid, _ in self.executions() if uid in self.uids})

    def kill_busy_worker(self) -> bool:
        """SIGKILL a worker while it runs a task (which is cut short) and start another;
        False (and no kill) if every task has run already."""
        found: list[int] = []

        def busy() -> bool:
            i = self.busy_worker()
            if i is not None:
                found.append(i)
            return i is not None or self.executed() >= len(self.names)

        wait_until("a worker running a task", busy, SETTLE_SECONDS, interval=0.05)
        if not found:
            return False
        self.kill_worker(found[-1])
        return True

    def kill_worker(self, i: int) -> None:
        """SIGKILL a worker (what it runs is cut short) and start a new one in its place."""
        worker = self.workers[i]
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait()
        worker.restart()
        worker.wait_ready(60)

    def publish_retries(self) -> float:
        return (
            probes.metric(self.operator_metrics, "asynctask_operator_publish_retries_total") or 0.0
        )

    def kill_operator(self) -> int:
        """SIGKILL the operator (a crash: nothing is acked or flushed) and start it again.

        Returns how many tasks had no status yet: the operator publishes a task, then
        records it (Pending, or the end of a task that ended within
        ``ASYNCTASK_PUBLISH_FOLD_SECONDS``), so any of them may have been published by the
        killed operator and is published again by the new one (its message then twice in
        the queue)."""
        self._retries -= self.publish_retries()  # the new operator counts from 0
        unrecorded = sum(1 for n in self.names if not any(self.watch.snapshot().get(n) or [None]))
        self.operator.proc.send_signal(signal.SIGKILL)
        self.operator.proc.wait()
        self.killed_in_window = self.in_record_window()  # run, and dead unrecorded
        self.operator.restart()
        self.operator.wait_ready(60)
        return unrecorded

    def in_record_window(self) -> set[str]:
        """Tasks of this scenario that a handler has started but whose object shows no
        phase yet: published, not recorded (their Pending held for their end, or not yet
        written): a kill now is a kill in the publish→record window."""
        started = {uid for uid, _ in self.executions() if uid in self.uids}
        now = self.watch.snapshot()
        unrecorded = {n for n in self.names if not any(now.get(n) or [None])}
        return {n for n in unrecorded if self._uid_of.get(n) in started}

    def wait_in_record_window(self, at_least: int) -> set[str]:
        """Until at least ``at_least`` tasks are in the publish→record window; them."""
        found: list[set[str]] = []

        def caught() -> bool:
            found.append(self.in_record_window())
            return len(found[-1]) >= at_least

        wait_until(
            f"{at_least} task(s) run but not yet recorded", caught, SETTLE_SECONDS, interval=0.02
        )
        return found[-1]

    def folded(self) -> int:
        """Tasks of this scenario whose first phase written was their end (one write)."""
        now = self.watch.snapshot()
        return sum(
            1
            for n in self.names
            if [p for p in now.get(n) or [] if p is not None][:1] == ["Succeeded"]
        )

    def leader(self, queue: str) -> RabbitMQ:
        return self.cluster.leader(self.vhost, queue)

    def worker_consumers_on(self, node: RabbitMQ) -> int:
        """Worker consumer connections of this scenario on ``node``: each holds at most one
        unacked task (prefetch 1), which a kill of the node hands to another worker."""
        conns = self.cluster.live()[0]._management("GET", "/api/connections")
        return sum(
            1
            for c in conns
            if c.get("node") == node.node
            and c.get("vhost") == self.vhost
            and str((c.get("client_properties") or {}).get("connection_name", "")).startswith(
                "worker "
            )
        )

    @contextmanager
    def apiserver_down(self) -> Iterator[None]:
        self.cp.stop_apiserver()
        try:
            yield
        finally:
            self.cp.start_apiserver()

    # figures -------------------------------------------------------------------------

    def executions(self) -> list[tuple[str, int]]:
        runs = []
        for path in self.executions_dir.glob("*.log"):
            for line in path.read_text().splitlines():
                uid, attempt, _ = line.split()
                runs.append((uid, int(attempt)))
        return runs

    def redeliveries(self) -> dict[str, int]:
        """RabbitMQ's count of redelivered messages per queue (management statistics,
        which lag a few seconds behind)."""
        out = {}
        for queue in (TASK_QUEUE, topology.STATUS_QUEUE):
            info: dict[str, Any] = self.cluster.queue(self.vhost, queue)
            out[queue] = int((info.get("message_stats") or {}).get("redeliver", 0))
        return out

    def members(self) -> dict[str, list[str]]:
        return {
            q["name"]: sorted(q.get("members") or [])
            for q in self.cluster.quorum_queues(self.vhost)
        }

    def finish(self, figures: Figures) -> Figures:
        runs = [(uid, attempt) for uid, attempt in self.executions() if uid in self.uids]
        figures.tasks = len(self.names)
        figures.executions = len(runs)
        figures.reruns = len(runs) - len({uid for uid, _ in runs})
        figures.duplicates = len(runs) - len(set(runs))
        figures.republished += int(self.publish_retries() - self._retries)
        figures.redeliveries = {
            q: (n - self._redelivered.get(q, 0)) if n >= self._redelivered.get(q, 0) else None
            for q, n in self.redeliveries().items()
        }
        figures.result = summary(self.watch.snapshot(), self.names)
        print(figures.line())
        return figures

    def stop(self) -> None:
        self.watch.stop()
        for p in [*self.workers, self.operator]:
            p.stop()
        if not os.environ.get("ASYNCTASK_KEEP_TESTBED"):
            self.cluster.live()[0].delete_vhost(self.vhost)
        for p in [self.operator, *self.workers]:
            if "Traceback" in p.text():
                print(f"--- {p.name} log (tail) ---\n{p.text()[-3000:]}")
