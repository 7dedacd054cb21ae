"""The schedule view and the queue view: what an HTTP client (or a program) needs of one
AsyncTaskSchedule and one AsyncQueue, and the task a schedule's manual trigger creates.

Like :mod:`asynctask_worker.views` (the task view), this needs pydantic only: the gateway
answers with these views and builds the manual task here, and the client builds the same
views and the same task through the Kubernetes API, so both read alike. The names follow
the CRDs' fields, so a view reads like ``kubectl get -o yaml``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

GROUP = "asynctask.dev"
API_VERSION = f"{GROUP}/v1alpha1"
SCHEDULE_KIND = "AsyncTaskSchedule"
#: The label every task of a schedule carries (list them with ``labelSelector``).
SCHEDULE_LABEL = f"{GROUP}/schedule"
#: The annotation of a task made by a manual trigger (``manual``), not by a slot.
TRIGGERED_BY = f"{GROUP}/triggered-by"
#: The annotation of a slot's task: the slot time (RFC 3339).
SCHEDULED_TIME = f"{GROUP}/scheduled-time"


class ConditionView(BaseModel):
    """One status condition as written (``type``, ``status``, ``reason``, ``message``)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    type: str
    status: str = "Unknown"
    reason: str | None = None
    message: str | None = None
    last_transition_time: str | None = Field(None, alias="lastTransitionTime")


class ActiveTask(BaseModel):
    """A task of the schedule that has not ended (``status.active``)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str
    uid: str = ""


class ScheduleView(BaseModel):
    """One schedule as clients see it: ``schedule`` (cron) or ``intervalSeconds``, its
    policy, when it last ran and runs next, the tasks still active, and its Ready
    condition (``Ready=False`` says why it does not fire, e.g. an invalid cron)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: str
    namespace: str
    uid: str = ""
    schedule: str | None = Field(None, description="spec.schedule: a cron expression.")
    interval_seconds: int | None = Field(
        None, alias="intervalSeconds", description="spec.intervalSeconds: every N seconds."
    )
    time_zone: str | None = Field(None, alias="timeZone")
    suspend: bool = False
    concurrency_policy: str = Field("Allow", alias="concurrencyPolicy")
    queue: str = Field("", description="spec.template.spec.queue: where its tasks go.")
    last_schedule_time: str | None = Field(None, alias="lastScheduleTime")
    last_successful_time: str | None = Field(None, alias="lastSuccessfulTime")
    next_schedule_time: str | None = Field(None, alias="nextScheduleTime")
    active: list[ActiveTask] = Field(default_factory=list)
    ready: ConditionView | None = Field(None, description="The Ready condition, if written.")
    created_at: str | None = Field(None, alias="createdAt")
    resource_version: str = Field("", alias="resourceVersion")

    def to_json(self) -> dict[str, Any]:
        """The wire form (camelCase names, every field present)."""
        return self.model_dump(mode="json", by_alias=True)


class RateLimitView(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    per_second: float = Field(alias="perSecond")
    burst: int | None = None


class QueueView(BaseModel):
    """One queue as clients see it: its policy (``paused``, ``maxInFlight``,
    ``rateLimit``) and what the operator last counted (tasks held back, in flight, ready in
    RabbitMQ, consumers, the start rate per second over the last minute)."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    name: str
    uid: str = ""
    paused: bool = False
    max_in_flight: int | None = Field(None, alias="maxInFlight")
    rate_limit: RateLimitView | None = Field(None, alias="rateLimit")
    held: int = 0
    in_flight: int = Field(0, alias="inFlight")
    ready: int = Field(0, description="Messages ready in RabbitMQ.")
    consumers: int = 0
    start_rate: float | None = Field(None, alias="startRate", description="Tasks started/s.")
    oldest_held_time: str | None = Field(None, alias="oldestHeldTime")
    conditions: list[ConditionView] = Field(default_factory=list)
    created_at: str | None = Field(None, alias="createdAt")
    resource_version: str = Field("", alias="resourceVersion")

    def to_json(self) -> dict[str, Any]:
        """The wire form (camelCase names, every field present)."""
        return self.model_dump(mode="json", by_alias=True)


def _conditions(status: Mapping[str, Any]) -> list[ConditionView]:
    return [
        ConditionView.model_validate(c)
        for c in status.get("conditions") or []
        if isinstance(c, Mapping) and c.get("type")
    ]


def _count(value: Any) -> int:
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def _rate(value: Any) -> float | None:
    """``status.startRate``: a number, or a number written as a string ("2.5")."""
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def schedule_view(obj: Mapping[str, Any]) -> ScheduleView:
    """The view of one AsyncTaskSchedule object (a dict as the Kubernetes API returns it)."""
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    spec: Mapping[str, Any] = obj.get("spec") or {}
    status: Mapping[str, Any] = obj.get("status") or {}
    template: Mapping[str, Any] = spec.get("template") or {}
    ready = [c for c in _conditions(status) if c.type == "Ready"]
    return ScheduleView(
        name=str(meta.get("name", "")),
        namespace=str(meta.get("namespace", "")),
        uid=str(meta.get("uid", "")),
        schedule=spec.get("schedule"),
        intervalSeconds=spec.get("intervalSeconds"),
        timeZone=spec.get("timeZone"),
        suspend=bool(spec.get("suspend")),
        concurrencyPolicy=str(spec.get("concurrencyPolicy") or "Allow"),
        queue=str((template.get("spec") or {}).get("queue") or ""),
        lastScheduleTime=status.get("lastScheduleTime"),
        lastSuccessfulTime=status.get("lastSuccessfulTime"),
        nextScheduleTime=status.get("nextScheduleTime"),
        active=[
            ActiveTask.model_validate(a)
            for a in status.get("active") or []
            if isinstance(a, Mapping) and a.get("name")
        ],
        ready=ready[0] if ready else None,
        createdAt=meta.get("creationTimestamp"),
        resourceVersion=str(meta.get("resourceVersion", "")),
    )


def queue_view(obj: Mapping[str, Any]) -> QueueView:
    """The view of one AsyncQueue object (cluster-scoped: no namespace)."""
    meta: Mapping[str, Any] = obj.get("metadata") or {}
    spec: Mapping[str, Any] = obj.get("spec") or {}
    status: Mapping[str, Any] = obj.get("status") or {}
    rate = spec.get("rateLimit")
    return QueueView(
        name=str(meta.get("name", "")),
        uid=str(meta.get("uid", "")),
        paused=bool(spec.get("paused")),
        maxInFlight=spec.get("maxInFlight"),
        rateLimit=RateLimitView.model_validate(rate)
        if isinstance(rate, Mapping) and rate.get("perSecond") is not None
        else None,
        held=_count(status.get("held")),
        inFlight=_count(status.get("inFlight")),
        ready=_count(status.get("ready")),
        consumers=_count(status.get("consumers")),
        startRate=_rate(status.get("startRate")),
        oldestHeldTime=status.get("oldestHeldTime"),
        conditions=_conditions(status),
        createdAt=meta.get("creationTimestamp"),
        resourceVersion=str(meta.get("resourceVersion", "")),
    )


def manual_task(
    schedule: Mapping[str, Any], annotations: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The AsyncTask a manual "trigger now" creates from a schedule object: its template's
    spec, labels and annotations, ``generateName: <schedule>-manual-``, the schedule's
    label, ``asynctask.dev/triggered-by: manual`` and a controller ownerReference to the
    schedule (so deleting the schedule collects it, as it does its slots' tasks).
    ``annotations`` are added (e.g. who asked, through the gateway)."""
    meta: Mapping[str, Any] = schedule.get("metadata") or {}
    template: Mapping[str, Any] = (schedule.get("spec") or {}).get("template") or {}
    template_meta: Mapping[str, Any] = template.get("metadata") or {}
    name = str(meta.get("name", ""))
    return {
        "apiVersion": API_VERSION,
        "kind": "AsyncTask",
        "metadata": {
            "generateName": f"{name}-manual-",
            "namespace": str(meta.get("namespace", "")),
            "labels": {**(template_meta.get("labels") or {}), SCHEDULE_LABEL: name},
            "annotations": {
                **(template_meta.get("annotations") or {}),
                **dict(annotations or {}),
                TRIGGERED_BY: "manual",
            },
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": SCHEDULE_KIND,
                    "name": name,
                    "uid": str(meta.get("uid", "")),
                    "controller": True,
                }
            ],
        },
        "spec": dict(template.get("spec") or {}),
    }
