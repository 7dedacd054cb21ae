"""Kubernetes Events for what a person would investigate, never one per progress tick.

Every Event is an API write, and a task's budget is three writes (Pending, Processing,
its end). So by default (``ASYNCTASK_EVENTS=failures``) Events are recorded for what goes
wrong or is done to a task: Failed, Error, TimedOut, Cancelled, a retry, a dead-lettered
message. ``all`` adds one Event per phase change (Pending, Processing, Succeeded: +3
writes a task); ``none`` records nothing. Recording never blocks status writes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from datetime import UTC, datetime
from typing import Any, Literal

from asynctask_operator.kube import Kube
from asynctask_operator.settings import GROUP, KIND, VERSION
from asynctask_worker.messages import Phase, TaskRef

log = logging.getLogger("asynctask.operator.events")
EventPolicy = Literal["all", "failures", "none"]
WARNING_REASONS = frozenset({"Failed", "Error", "TimedOut", "Retrying", "DeadLettered"})


def wanted(policy: EventPolicy, reason: str) -> bool:
    """Is an Event with this reason recorded under this policy?"""
    if policy == "none":
        return False
    if policy == "all":
        return True
    return reason not in (Phase.PENDING.value, Phase.PROCESSING.value, Phase.SUCCEEDED.value)


class EventRecorder:
    def __init__(self, kube: Kube, policy: EventPolicy = "failures") -> None:
        self.kube = kube
        self.policy = policy
        self.instance = socket.gethostname()
        self._tasks: set[asyncio.Task[None]] = set()

    def record(self, ref: TaskRef, reason: str, message: str) -> None:
        if not wanted(self.policy, reason):
            return
        kind = "Warning" if reason in WARNING_REASONS else "Normal"
        task = asyncio.get_running_loop().create_task(self._post(ref, kind, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _post(self, ref: TaskRef, kind: str, reason: str, message: str) -> None:
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {"apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
                               "name": ref.name, "namespace": ref.namespace, "uid": ref.uid},
            "type": kind, "reason": reason, "message": message[:1024],
            "source": {"component": "asynctask-operator"},
            "reportingComponent": "asynctask.dev/operator", "reportingInstance": self.instance,
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        }
        try:
            await self.kube.create_event(ref.namespace, body)
        except Exception as exc:  # noqa: BLE001 - an Event is best effort
            log.warning("could not record event %s for %s/%s: %s", reason, ref.namespace,
                        ref.name, exc)
