"""Three private RabbitMQ nodes clustered: what the chart's production shape looks like.

Each node is a :class:`testbed.RabbitMQ` (Debian's ``rabbitmq-server``) with its own AMQP,
distribution and management ports and data directory. The nodes share one Erlang cookie
and one epmd on a private port, through which they find each other; the second and third
join the first (``rabbitmqctl join_cluster``). Quorum queues declared afterwards get a
member on every node (their initial group size is the cluster's size), so a queue survives
the loss of any one node.

The chaos tests kill a node (SIGKILL: a crash, not a shutdown), find the leader of a queue
to kill the right one, and bring a node back with its data; it rejoins by itself.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from testbed._proc import free_port, log, wait_until
from testbed.rabbitmq import RabbitMQ
from testbed.service import Service

SIZE = 3


@dataclass
class RabbitMQCluster(Service):
    """A running 3-node cluster. Use as a context manager, or start()/stop()."""

    workdir: Path | None = None
    nodes: list[RabbitMQ] = field(default_factory=list)
    epmd_port: int = 0
    _own_workdir: bool = False
    workdir_prefix: ClassVar[str] = "asynctask-rabbitmq-cluster-"

    @property
    def url(self) -> str:
        """Every node's AMQP URL, comma-separated: what ``ASYNCTASK_AMQP_URL`` takes."""
        return ",".join(n.url for n in self.nodes)

    def vhost_url(self, vhost: str) -> str:
        return ",".join(n.vhost_url(vhost) for n in self.nodes)

    @property
    def management_url(self) -> str:
        """The first node's management API (any node answers for the whole cluster)."""
        return self.nodes[0].management_url

    def _start(self, work: Path) -> None:
        self.epmd_port = self.epmd_port or free_port()
        env = {**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"}
        # One epmd for the three nodes, started here so that no node's exit ends it.
        subprocess.run(["epmd", "-port", str(self.epmd_port), "-daemon"], env=env, check=True)
        cookie = secrets.token_hex(16)
        for i in range(SIZE):
            (work / f"node-{i}").mkdir(parents=True, exist_ok=True)
            self.nodes.append(
                RabbitMQ(
                    workdir=work / f"node-{i}",
                    management=True,
                    epmd_port=self.epmd_port,
                    cookie=cookie,
                )
            )
        for node in self.nodes:  # booting takes a while: the three boot at once
            assert node.workdir is not None
            node.launch(node.workdir)
        for node in self.nodes:
            node.wait_ready()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            log("rabbitmq", f"{node.node} joins {first.node}")
            node.ctl("stop_app")
            node.ctl("reset")
            node.ctl("join_cluster", first.node)
            node.ctl("start_app")
        wait_until(
            "the three RabbitMQ nodes to run as one cluster",
            lambda: len(self.running_nodes()) == SIZE,
            60,
        )
        log("rabbitmq", f"cluster ready: {self.url}")

    def running_nodes(self, via: RabbitMQ | None = None) -> list[str]:
        """The nodes the cluster says are running (asked of ``via``, or of a live node)."""
        asked = via or self.live()[0]
        info = asked._management("GET", "/api/nodes")
        return sorted(n["name"] for n in info if n.get("running"))

    def live(self) -> list[RabbitMQ]:
        return [n for n in self.nodes if n._proc is not None]

    def by_name(self, name: str) -> RabbitMQ:
        (node,) = [n for n in self.nodes if n.node == name]
        return node

    # queues -------------------------------------------------------------------------

    def add_vhost(self, vhost: str) -> str:
        """A virtual host the guest user may use fully; its URL on every node."""
        self.nodes[0].add_vhost(vhost)
        return self.vhost_url(vhost)

    def queue(self, vhost: str, name: str) -> dict[str, Any]:
        """A queue as the management API of a live node shows it (``leader``, ``members``,
        ``online`` for a quorum queue)."""
        return self.live()[0].queue(vhost, name)

    def leader(self, vhost: str, queue: str) -> RabbitMQ:
        """The node that leads a quorum queue now."""
        return self.by_name(str(self.queue(vhost, queue)["leader"]))

    def members(self, vhost: str, queue: str) -> list[str]:
        return sorted(self.queue(vhost, queue).get("members") or [])

    def quorum_queues(self, vhost: str) -> list[dict[str, Any]]:
        path = f"/api/queues/{urllib.parse.quote(vhost, safe='')}"
        queues: list[dict[str, Any]] = self.live()[0]._management("GET", path)
        return [q for q in queues if q.get("type") == "quorum"]

    # faults -------------------------------------------------------------------------

    def kill(self, node: RabbitMQ) -> None:
        """SIGKILL one node; the other two keep every quorum queue available."""
        node.kill()

    def restart(self, node: RabbitMQ) -> None:
        """Start a killed node again (same ports, same data): it rejoins the cluster, and
        its quorum queue members catch up from the leaders."""
        node.start_node()
        wait_until(
            f"{node.node} to be running in the cluster again",
            lambda: node.node in self.running_nodes(via=node),
            90,
        )

    def _stop(self) -> None:
        for node in reversed(self.nodes):
            with contextlib.suppress(Exception):
                node.stop_node()
        if self.epmd_port:
            subprocess.run(
                ["epmd", "-port", str(self.epmd_port), "-kill"], capture_output=True, check=False
            )
