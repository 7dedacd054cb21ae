"""Kubernetes Events for what a person would investigate, never one per progress tick.

Every Event is an API write, and a task's budget is three writes (Pending, Processing,
its end). So by default (``ASYNCTASK_EVENTS=failures``) Events are recorded for what goes
wrong or is done to a task: Failed, Error, TimedOut, Cancelled, a retry, a dead-lettered
message. ``all`` adds one Event per phase change (Pending, Processing, Succeeded: +3
writes a task); ``none`` records nothing. Recording never blocks status writes.

(Kubernetes Events only: the CloudEvents of webhooks are in :mod:`webhooks.cloudevents`.)
"""

from __future__ import annotations

import logging
import socket
from datetime import UTC, datetime
from typing import Any, Literal

from asynctask_operator.apiserver.resource import GROUP, KIND, VERSION
from asynctask_operator.background import Background
from asynctask_operator.limits import MESSAGE_CHARS
from asynctask_operator.observers import Written
from asynctask_operator.ports import EventApi
from asynctask_operator.status import phase_of, rfc3339
from asynctask_worker.messages import Phase, TaskRef

log = logging.getLogger("asynctask.operator.events")
EventPolicy = Literal["all", "failures", "none"]
WARNING_REASONS = frozenset(
    {"Failed", "Error", "TimedOut", "Retrying", "DeadLettered", "Missed", "Skipped"}
)
#: Reasons recorded only under ``all``: one per run of a schedule would be a write per run.
ROUTINE = (Phase.PENDING.value, Phase.PROCESSING.value, Phase.SUCCEEDED.value, "Created")


def wanted(policy: EventPolicy, reason: str) -> bool:
    """Is an Event with this reason recorded under this policy?"""
    if policy == "none":
        return False
    if policy == "all":
        return True
    return reason not in ROUTINE


class EventRecorder:
    def __init__(self, kube: EventApi, policy: EventPolicy = "failures") -> None:
        self.kube = kube
        self.policy = policy
        self.instance = socket.gethostname()
        self._posts = Background()

    def status_written(self, written: Written) -> None:
        """An observer of the status writer: an Event for a phase change (not a retry's)."""
        status = written.status
        phase = phase_of(status)
        if (
            phase is not None
            and phase is not phase_of(written.previous)
            and not status.get("nextAttempt")
        ):
            detail = (status.get("error") or {}).get("message") or status.get("message") or ""
            self.record(written.ref, phase.value, str(detail))

    def task_forgotten(self, uid: str) -> None:
        pass

    def record(self, ref: TaskRef, reason: str, message: str, *, about: str = KIND) -> None:
        """An Event about ``ref``, an AsyncTask (or ``about`` another kind of the group,
        e.g. an AsyncTaskSchedule)."""
        if not wanted(self.policy, reason):
            return
        kind = "Warning" if reason in WARNING_REASONS else "Normal"
        post = self._post(ref, kind, reason, message, about)
        self._posts.spawn(post, name=f"event-{reason}")

    async def drain(self) -> None:
        """Wait until the Events recorded so far are posted (or failed)."""
        await self._posts.join()

    async def _post(self, ref: TaskRef, kind: str, reason: str, message: str, about: str) -> None:
        now = rfc3339(datetime.now(UTC))
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{ref.name}.", "namespace": ref.namespace},
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": about,
                "name": ref.name,
                "namespace": ref.namespace,
                "uid": ref.uid,
            },
            "type": kind,
            "reason": reason,
            "message": message[:MESSAGE_CHARS],
            "source": {"component": "asynctask-operator"},
            "reportingComponent": "asynctask.dev/operator",
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self.kube.create_event(ref.namespace, body)
        except Exception as exc:  # noqa: BLE001 - an Event is best effort
            log.warning(
                "could not record event %s for %s/%s: %s", reason, ref.namespace, ref.name, exc
            )
