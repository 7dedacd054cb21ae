"""Operator replicas with the same ``--peering NAME`` elect one leader on the Lease NAME
(docs/scaling-out.md): only the leader queues tasks; a graceful stop hands over at once
(the Lease is released), a killed leader's Lease is taken once it expires, and a new leader
queues what was created while nobody led.

Each operator runs in the test's own namespace (outside the shared operator's ``t-*``) and
RabbitMQ virtual host; no worker runs, so a queued task stays Pending.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from testbed import ControlPlane, RabbitMQ, probes, wait_until
from testbed._proc import free_port
from tests.e2e.system import PeeredOperators, Process
from tests.e2e.tasks import create, wait_phase

pytestmark = pytest.mark.e2e

LEASE = "asynctask-leader"
#: Comfortably above the lease duration (15 s) plus a retry period and a start-up.
TAKEOVER = 60
PUBLISHED = "asynctask_operator_tasks_published_total"


class Replica:
    def __init__(self, name: str, process: Process, live: int, metrics: int) -> None:
        self.name = name
        self.process = process
        self.live = probes.liveness_url(live)
        self.metrics = probes.metrics_url(metrics)

    def published(self) -> float | None:
        """Tasks it queued; None while it serves no metrics (a standby never started)."""
        return probes.metric(self.metrics, PUBLISHED, queue="hello")


class Replicas(PeeredOperators):
    def __init__(self, cp: ControlPlane, rmq: RabbitMQ, tmp: Path, stack: ExitStack) -> None:
        super().__init__(cp, rmq, tmp, stack, lease=LEASE, prefix="lease")

    def start(self, name: str) -> Replica:
        live, metrics = free_port(), free_port()
        process = self.process(name, live, ASYNCTASK_METRICS_PORT=str(metrics))
        self.stack.callback(lambda: print(f"\n--- {name} log ---\n{process.text()[-4000:]}"))
        self.stack.callback(process.stop)
        process.wait_ready(60)
        return Replica(name, process, live, metrics)

    def wait_leader(self, *candidates: Replica) -> Replica:
        """The candidate the Lease names, once it names one of them and it says it leads."""
        wait_until(
            "one of them holds the Lease",
            lambda: self.holder().split("_")[0] in {r.name for r in candidates},
            timeout=TAKEOVER,
        )
        (leader,) = [r for r in candidates if self.holder().startswith(f"{r.name}_")]
        leader.process.wait_for_log(f"leading as {self.holder()}", timeout=30)
        return leader

    def task_queued_by(self, name: str, leader: Replica, before: float) -> None:
        create(self.cp, self.namespace, name, queue="hello", request={"who": name})
        wait_phase(self.cp, self.namespace, name, "Pending")
        wait_until(f"{leader.name} queued {name}", lambda: leader.published() == before + 1)


@pytest.fixture
def replicas(
    control_plane: ControlPlane, rabbitmq: RabbitMQ, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Replicas]:
    with ExitStack() as stack:
        yield Replicas(control_plane, rabbitmq, tmp_path_factory.mktemp("lease"), stack)


def test_one_replica_leads_and_a_standby_takes_over(replicas: Replicas) -> None:
    a, b = replicas.start("op-a"), replicas.start("op-b")
    leader = replicas.wait_leader(a, b)
    standby = b if leader is a else a
    standby.process.wait_for_log(f"standing by: {replicas.holder()} leads")
    wait_until("the probes say who leads", lambda: probes.operator_role(leader.live) == "leading")
    assert probes.operator_role(standby.live) == "standby"
    assert replicas.lease()["leaseDurationSeconds"] == 15

    # Only the leader works: the standby never started (no metrics served, nothing queued).
    replicas.task_queued_by("job-alpha", leader, 0)
    assert standby.published() is None
    assert "job-alpha" not in standby.process.text()

    # A graceful stop releases the Lease: the standby need not wait for it to expire.
    transitions = replicas.lease().get("leaseTransitions", 0)
    leader.process.stop()
    assert leader.process.proc.returncode == 0
    assert "released the Lease" in leader.process.text()
    lease = replicas.lease()
    assert lease.get("holderIdentity", "").startswith(f"{standby.name}_") or (
        not lease.get("holderIdentity") and lease["leaseDurationSeconds"] == 1
    ), lease
    assert replicas.wait_leader(standby) is standby
    assert replicas.lease()["leaseTransitions"] == transitions + 1
    replicas.task_queued_by("job-beta", standby, 0)  # "job-alpha" was queued already: not again

    # A killed leader releases nothing: a new replica waits for the Lease to expire, then
    # queues what was created while nobody led.
    standby.process.proc.send_signal(signal.SIGKILL)
    standby.process.proc.wait(10)
    create(replicas.cp, replicas.namespace, "job-orphan", queue="hello", request={})
    third = replicas.start("op-c")
    third.process.wait_for_log(f"standing by: {replicas.holder()} leads")
    assert replicas.wait_leader(third) is third
    wait_phase(replicas.cp, replicas.namespace, "job-orphan", "Pending")
    wait_until("op-c queued the orphan", lambda: third.published() == 1)
    replicas.task_queued_by("job-gamma", third, 1)
