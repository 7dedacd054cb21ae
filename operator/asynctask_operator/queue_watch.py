"""The operator's watch of AsyncQueues, and the queues' status and Events.

The AsyncQueues are listed and watched like the tasks (:mod:`apiserver.listwatch`; one
cluster-wide scope: the resource is cluster-scoped). Each object's spec goes to the gate
(:class:`queues.gate.QueueGate`) at once: a pause stops new publishes before this returns,
a resume or a raised limit admits held tasks on the gate's next turn. A deleted AsyncQueue
leaves its queue without a policy: held tasks are published at once.

Every :data:`INTERVAL` seconds each AsyncQueue's status is computed (:mod:`queues.report`:
held, in flight, ready and consumers from RabbitMQ, start rate, oldest held) and written
only if it changed. A pause or a resume is also told as a Kubernetes Event on the queue.
Only the leader runs this (the operator is started once elected).

An AsyncQueue is cluster-scoped: one object per queue name, whichever namespaces' tasks
use it. An operator that serves some namespaces (a shard: docs/scaling-out.md) counts only
their tasks and reads only its own virtual host's queue, so with two shards each would
overwrite the other's figures every 2 s and record the same Event twice. With ``writes``
false (``ASYNCTASK_QUEUE_STATUS=false``, set on every shard but one) neither is written;
the policies are still applied to the operator's own tasks and its metrics still set.
Which shard writes is configuration, not guessed: one operator serving a few namespaces
(RBAC per namespace) is the only operator, and writes as ever.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import UTC, datetime
from typing import Any

from asynctask_operator.apiserver.apiclient import ApiClient, ApiError
from asynctask_operator.apiserver.listwatch import Kind, ListWatch, OutageReport, Scope
from asynctask_operator.apiserver.resource import GROUP, QUEUE_KIND, VERSION, queues_path
from asynctask_operator.background import Background
from asynctask_operator.errors import Gone, Unavailable
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.ports import QueueApi, QueueDepths
from asynctask_operator.queues.gate import QueueGate
from asynctask_operator.queues.policy import Reason
from asynctask_operator.queues.report import Depth, changed, merge_patch, queue_status
from asynctask_operator.status import rfc3339

log = logging.getLogger("asynctask.operator")

#: The least time between two status writes of one AsyncQueue, in seconds.
INTERVAL = 2.0
#: Where Events about cluster-scoped objects go.
EVENT_NAMESPACE = "default"


class WarmingUp:
    """The outage report of the AsyncQueue watch: a ``429 storage is (re)initializing`` is
    the apiserver's watch cache of AsyncQueues warming up just after it started, not an
    outage (the tasks' watch, warm sooner, already said it answers again): the watch
    retries it without telling anyone. Everything else is told as usual."""

    def __init__(self, outage: OutageReport) -> None:
        self._outage = outage

    def failed(self, exc: Unavailable) -> None:
        if "initializing" not in str(exc):
            self._outage.failed(exc)

    def answered(self) -> None:
        self._outage.answered()


class QueueWatch:
    """A :class:`listwatch.WatchSink` of AsyncQueues, and their status writer."""

    def __init__(
        self,
        client: ApiClient,
        api: QueueApi,
        depths: QueueDepths,
        gate: QueueGate,
        metrics: OperatorMetrics,
        *,
        outage: OutageReport | None = None,
        interval: float = INTERVAL,
        writes: bool = True,
    ) -> None:
        self.api = api
        self.writes = writes  # the queues' status and Events
        self.depths = depths
        self.gate = gate
        self.metrics = metrics
        self.interval = interval
        self._objects: dict[str, tuple[str, int | None]] = {}  # name -> (uid, generation)
        self._written: dict[str, dict[str, Any]] = {}
        self._events = Background()
        self._instance = f"{socket.gethostname()}-{os.getpid()}"
        self._client = client
        quiet = None if outage is None else WarmingUp(outage)
        self.listwatch = ListWatch(client, queues_path, [None], self, outage=quiet)

    async def run(self) -> None:
        await self._probe()
        await asyncio.gather(self.listwatch.run(), self._report())

    async def _probe(self) -> None:
        """AsyncQueues that cannot be listed at all (the CRD not installed, or no right to
        list them) must not stop every task: the queues then run without policy, told
        once; the watch keeps trying and applies policies once it can list them."""
        try:
            await self._client.request("GET", queues_path(None), params={"limit": "1"})
        except ApiError as exc:
            if exc.status in (403, 404):
                log.warning(
                    "cannot list AsyncQueues (%d %s): every queue publishes without policy "
                    "until they can be listed (install the AsyncQueue CRD; the operator "
                    "needs get, list and watch on asyncqueues)",
                    exc.status,
                    exc.message,
                )
                self.gate.synced("queues")
        except Exception:
            log.debug("AsyncQueues not listed yet", exc_info=True)

    # the sink --------------------------------------------------------------------------

    def event(self, kind: Kind, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        name = str(meta.get("name") or "")
        if not name:
            return
        if kind == "DELETED":
            self._forget(name)
            return
        before = self.gate.policy(name)
        policy = self.gate.set_policy(name, obj.get("spec"))
        self._objects[name] = (str(meta.get("uid") or ""), meta.get("generation"))
        if name not in self._written:
            self._written[name] = dict(obj.get("status") or {})
        if self.writes and before is not None and before.paused != policy.paused:
            reason = "Paused" if policy.paused else "Resumed"
            view = self.gate.view(name)
            message = (
                f"paused: no new task is published; {view.in_flight} in flight finish"
                if policy.paused
                else f"resumed: {view.held} held tasks are published as admitted"
            )
            log.info("queue %s %s", name, message)
            self._events.spawn(self._event(name, reason, message), name=f"queue-event-{name}")

    def listed(self, scope: Scope, seen: set[str]) -> None:
        uids = {uid: name for name, (uid, _) in self._objects.items()}
        for uid, name in uids.items():
            if uid not in seen:
                self._forget(name)
        self.gate.synced("queues")

    def _forget(self, name: str) -> None:
        self._objects.pop(name, None)
        self._written.pop(name, None)
        self.gate.drop_policy(name)
        for reason in Reason:
            self.metrics.queue_held.labels(name, reason.value).set(0)

    # status ----------------------------------------------------------------------------

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            for name in list(self._objects):
                try:
                    await self.report(name)
                except Exception as exc:  # noqa: BLE001 - next turn tries again
                    log.warning("could not write the status of AsyncQueue %s: %s", name, exc)

    async def report(self, name: str) -> None:
        """Compute one queue's status; write it if it changed."""
        found = self._objects.get(name)
        if found is None or not self.gate.ready:
            return
        view = self.gate.view(name)
        self.metrics.queue_in_flight.labels(name).set(view.in_flight)
        for reason in Reason:
            held = view.held if reason is (view.blocked_by or Reason.WAITING_FOR_TURN) else 0
            self.metrics.queue_held.labels(name, reason.value).set(held)
        if not self.writes:
            return  # a shard: the status is not its to write (the depth is only for it)
        try:
            ready, consumers = await self.depths.queue_depth(name)
            depth = Depth(ready, consumers)
        except Exception as exc:  # noqa: BLE001 - RabbitMQ away: the rest is still worth it
            log.debug("could not read the depth of queue %s: %s", name, exc)
            depth = Depth(None, None)
        previous = self._written.get(name, {})
        status = queue_status(view, depth, found[1], previous, datetime.now(UTC))
        if not changed(previous, status):
            return
        try:
            await self.api.patch_queue_status(name, merge_patch(previous, status))
        except Gone:
            return
        self._written[name] = status

    async def _event(self, name: str, reason: str, message: str) -> None:
        uid = self._objects.get(name, ("", None))[0]
        now = rfc3339(datetime.now(UTC))
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{name}.", "namespace": EVENT_NAMESPACE},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": QUEUE_KIND,
                "name": name,
                "uid": uid,
            },
            "type": "Normal",
            "reason": reason,
            "message": message,
            "source": {"component": "asynctask-operator"},
            "reportingComponent": "asynctask.dev/operator",
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.api.create_event(EVENT_NAMESPACE, body)
        except Exception as exc:  # noqa: BLE001 - an Event is best effort
            log.warning("could not record event %s for AsyncQueue %s: %s", reason, name, exc)
