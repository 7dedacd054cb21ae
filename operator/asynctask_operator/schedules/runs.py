"""What a schedule's run is made of, and what it leaves behind (pure).

* :class:`Schedule`: an AsyncTaskSchedule as the controller reads it (spec and the status
  fields it resumes from), parsed once per event;
* :class:`Run`: one of its tasks as seen by the watch of scheduled tasks (label
  ``asynctask.dev/schedule``): its slot, phase and times;
* :func:`task_body`: the AsyncTask a slot creates (the contract's name, label, annotation
  and controller ownerReference);
* :func:`beyond_history`: the finished tasks past the history limits, oldest first;
* :func:`status`: the one status the controller writes at a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from asynctask_operator.apiserver.resource import API_VERSION, SCHEDULE_KIND
from asynctask_operator.status import parse_time, rfc3339

SCHEDULE_LABEL = "asynctask.dev/schedule"
SCHEDULED_TIME = "asynctask.dev/scheduled-time"
TRIGGERED_BY = "asynctask.dev/triggered-by"
ACTIVE_PHASES = frozenset({"", "Pending", "Processing"})

Policy = Literal["Allow", "Forbid", "Replace"]


class Template(BaseModel):
    model_config = ConfigDict(extra="ignore")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    spec: dict[str, Any] = Field(default_factory=dict)


class ScheduleSpec(BaseModel):
    """The CRD's spec (its defaults applied by the apiserver, and again here)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    schedule: str | None = None
    interval_seconds: int | None = Field(None, alias="intervalSeconds")
    time_zone: str | None = Field(None, alias="timeZone")
    concurrency_policy: Policy = Field("Allow", alias="concurrencyPolicy")
    starting_deadline_seconds: int | None = Field(None, alias="startingDeadlineSeconds")
    suspend: bool = False
    successful_history: int = Field(3, alias="successfulTasksHistoryLimit")
    failed_history: int = Field(1, alias="failedTasksHistoryLimit")

    def timing(self) -> tuple[object, ...]:
        """What decides the slots: a change moves the cursor to the time of the change."""
        return (self.schedule, self.interval_seconds, self.time_zone, self.suspend)


@dataclass(frozen=True)
class Schedule:
    namespace: str
    name: str
    uid: str
    generation: int
    created: datetime
    spec: ScheduleSpec
    template: Template
    status: dict[str, Any]

    @property
    def key(self) -> tuple[str, str]:
        return (self.namespace, self.name)

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Schedule:
        meta, spec = obj.get("metadata") or {}, obj.get("spec") or {}
        template = spec.get("template") or {}
        tmeta = template.get("metadata") or {}
        return cls(
            namespace=str(meta.get("namespace") or ""),
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            generation=int(meta.get("generation") or 0),
            created=_time(meta.get("creationTimestamp")) or datetime.now(UTC),
            spec=ScheduleSpec.model_validate(spec),
            template=Template(
                labels=tmeta.get("labels") or {},
                annotations=tmeta.get("annotations") or {},
                spec=template.get("spec") or {},
            ),
            status=dict(obj.get("status") or {}),
        )

    def resume_from(self, now: datetime) -> datetime:
        """Where counting slots starts for an operator that takes this schedule over: the
        latest slot acted on as the status records it (run, skipped or missed); for a
        schedule never acted on, its creation; for one edited since the last status write
        (a new timing, a resume), now: the edit takes effect at the next slot."""
        observed = int(self.status.get("observedGeneration") or 0)  # 0: never seen
        if observed and observed != self.generation:
            return now
        times = [self.created]
        for name in ("lastScheduleTime", "lastMissedTime", "lastSkippedTime"):
            seen = _time(self.status.get(name))
            if seen is not None:
                times.append(seen)
        return max(times)


@dataclass
class Run:
    """One of a schedule's tasks, as the watch last saw it."""

    name: str
    uid: str
    slot: datetime | None  # None for a manual trigger
    created: datetime
    phase: str
    completed: datetime | None
    cancel: bool = False

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE_PHASES

    @classmethod
    def parse(cls, obj: dict[str, Any]) -> Run:
        meta, status = obj.get("metadata") or {}, obj.get("status") or {}
        annotations = meta.get("annotations") or {}
        created = _time(meta.get("creationTimestamp")) or datetime.now(UTC)
        return cls(
            name=str(meta.get("name") or ""),
            uid=str(meta.get("uid") or ""),
            slot=_time(annotations.get(SCHEDULED_TIME)),
            created=created,
            phase=str(status.get("phase") or ""),
            completed=_time(status.get("completionTime")),
            cancel=bool((obj.get("spec") or {}).get("cancel")),
        )


def task_name(schedule: str, slot: datetime) -> str:
    return f"{schedule}-{int(slot.timestamp())}"


def task_body(schedule: Schedule, slot: datetime) -> dict[str, Any]:
    """The AsyncTask for ``slot``: named after the slot, so a second create of the same
    slot meets AlreadyExists; owned by the schedule (deleting it collects its tasks)."""
    labels = {**schedule.template.labels, SCHEDULE_LABEL: schedule.name}
    annotations = {**schedule.template.annotations, SCHEDULED_TIME: rfc3339(slot)}
    spec = {k: v for k, v in schedule.template.spec.items() if k not in ("cancel", "notBefore")}
    return {
        "apiVersion": API_VERSION,
        "kind": "AsyncTask",
        "metadata": {
            "name": task_name(schedule.name, slot),
            "namespace": schedule.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": SCHEDULE_KIND,
                    "name": schedule.name,
                    "uid": schedule.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }


def beyond_history(
    runs: list[Run], successful: int, failed: int, recorded: datetime | None
) -> list[Run]:
    """The finished runs past the limits (the newest kept), oldest first; of the slots'
    runs only those the written status records (a slot at or before its
    ``lastScheduleTime``, ``recorded``): a slot's task is never deleted before the status
    says the slot ran, so an operator that takes over never reads the slot as missed."""
    done = sorted((r for r in runs if not r.active), key=_age, reverse=True)
    ok = [r for r in done if r.phase == "Succeeded"]
    other = [r for r in done if r.phase != "Succeeded"]
    past = ok[successful:] + other[failed:]
    kept = [r for r in past if r.slot is None or (recorded is not None and r.slot <= recorded)]
    return sorted(kept, key=_age)


def last_recorded(status: dict[str, Any]) -> datetime | None:
    """The latest slot a written status records as run (``lastScheduleTime``)."""
    return _time(status.get("lastScheduleTime"))


def _age(run: Run) -> tuple[datetime, datetime, str]:
    """Oldest first: by slot (a manual run by its creation), then creation, then name."""
    return (run.slot or run.created, run.created, run.name)


@dataclass
class Tally:
    """What the controller has done with a schedule since it took it over: folded into its
    next status write."""

    last_schedule: datetime | None = None
    last_missed: datetime | None = None
    missed: int = 0
    last_skipped: datetime | None = None
    skipped: int = 0

    def merged(self, newer: Tally) -> Tally:
        """This tally and a newer one in one (a status write that failed gives its tally
        back to the one gathered meanwhile)."""
        return Tally(
            last_schedule=_latest(self.last_schedule, newer.last_schedule),
            last_missed=_latest(self.last_missed, newer.last_missed),
            missed=self.missed + newer.missed,
            last_skipped=_latest(self.last_skipped, newer.last_skipped),
            skipped=self.skipped + newer.skipped,
        )


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((t for t in (a, b) if t is not None), default=None)


def status(
    schedule: Schedule,
    tally: Tally,
    runs: list[Run],
    next_slot: datetime | None,
    ready: tuple[bool, str, str],
    now: datetime,
) -> dict[str, Any]:
    """The schedule's whole status: counters carried over from the stored one, the active
    runs and the latest success from the watch, the Ready condition (its transition time
    kept while its status does not change)."""
    old = schedule.status
    out: dict[str, Any] = {"observedGeneration": schedule.generation}
    times = {
        "lastScheduleTime": tally.last_schedule,
        "lastMissedTime": tally.last_missed,
        "lastSkippedTime": tally.last_skipped,
    }
    for name, value in times.items():
        kept = _time(old.get(name))
        latest = max((t for t in (value, kept) if t is not None), default=None)
        if latest is not None:
            out[name] = rfc3339(latest)
    successes = [r.completed for r in runs if r.phase == "Succeeded" and r.completed]
    kept_success = _time(old.get("lastSuccessfulTime"))
    success = max([*successes, *([kept_success] if kept_success else [])], default=None)
    if success is not None:
        out["lastSuccessfulTime"] = rfc3339(success)
    if next_slot is not None:
        out["nextScheduleTime"] = rfc3339(next_slot)
    out["missedCount"] = int(old.get("missedCount") or 0) + tally.missed
    out["skippedCount"] = int(old.get("skippedCount") or 0) + tally.skipped
    active = sorted((r for r in runs if r.active), key=lambda r: r.created)
    out["active"] = [{"name": r.name, "uid": r.uid} for r in active][:1000]
    out["activeCount"] = len(active)
    out["conditions"] = _conditions(old, schedule.generation, ready, now)
    return out


def _conditions(
    old: dict[str, Any], generation: int, ready: tuple[bool, str, str], now: datetime
) -> list[dict[str, Any]]:
    """Ready, and Stalled (True when not Ready: what kstatus reads as Failed)."""
    value, reason, message = ready
    before: list[dict[str, Any]] = old.get("conditions") or []

    def condition(kind: str, flag: str, why: str, text: str) -> dict[str, Any]:
        was = next((c for c in before if c.get("type") == kind), {})
        since = was.get("lastTransitionTime") if was.get("status") == flag else None
        return {
            "type": kind,
            "status": flag,
            "reason": why,
            "message": text,
            "lastTransitionTime": since or rfc3339(now),
            "observedGeneration": generation,
        }

    if value:
        stalled = condition("Stalled", "False", reason, "the schedule is served")
    else:
        stalled = condition("Stalled", "True", reason, message)
    return [condition("Ready", "True" if value else "False", reason, message), stalled]


def _time(value: object) -> datetime | None:
    """An RFC 3339 time, or None for a missing or unreadable one."""
    if not value:
        return None
    try:
        return parse_time(str(value))
    except ValueError:
        return None
