"""What the CLI prints, as pure functions of views (unit-tested without a server).

Exit codes say the outcome, so a script needs no parsing: see :data:`EXIT_CODES`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import yaml

from asynctask_client.transport import Details
from asynctask_worker.messages import Phase
from asynctask_worker.resource_views import ConditionView, QueueView, ScheduleView
from asynctask_worker.views import TaskView

OK, UNEXPECTED, USAGE, REFUSED, UNREACHABLE, NOT_DONE = 0, 1, 2, 3, 4, 5
#: The exit code of each terminal phase (``wait``, ``submit --wait``, ``watch``, ``result``).
EXIT_CODES = {
    Phase.SUCCEEDED: OK,
    Phase.FAILED: 10,
    Phase.ERROR: 11,
    Phase.CANCELLED: 12,
    Phase.TIMED_OUT: 13,
}


def exit_code(view: TaskView) -> int:
    return EXIT_CODES[view.phase] if view.done else NOT_DONE


def machine(doc: Any, fmt: str) -> str:
    """``-o json`` or ``-o yaml``."""
    if fmt == "yaml":
        return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True).rstrip("\n")
    return json.dumps(doc, indent=2, ensure_ascii=False)


def age(timestamp: str | None, now: datetime | None = None) -> str:
    """kubectl's short age: 42s, 5m, 3h, 2d."""
    if not timestamp:
        return "<unknown>"
    then = datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    seconds = int(((now or datetime.now(UTC)) - then).total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{max(seconds, 0)}s"


def table(views: Sequence[TaskView], now: datetime | None = None) -> str:
    """``list``: NAME PHASE PROGRESS AGE MESSAGE, columns as wide as their widest cell."""
    rows = [("NAME", "PHASE", "PROGRESS", "AGE", "MESSAGE")]
    rows += [
        (
            v.name,
            v.phase.value,
            f"{v.progress}%",
            age(v.created_at, now),
            (v.message or "").replace("\n", " ")[:60],
        )
        for v in views
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    return "\n".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "   " + row[4]
        for row in rows
    ).rstrip()


def columns(rows: Sequence[Sequence[str]]) -> str:
    """Rows as ``kubectl get`` prints them: each column as wide as its widest cell."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows
    )


def timing(view: ScheduleView) -> str:
    """A schedule's timing: its cron (with a zone other than UTC), or ``every 30s``."""
    if view.interval_seconds is not None:
        return f"every {view.interval_seconds}s"
    zone = f" ({view.time_zone})" if view.time_zone and view.time_zone != "UTC" else ""
    return f"{view.schedule or ''}{zone}"


def _ready(condition: ConditionView | None) -> str:
    if condition is None:
        return "<unknown>"
    return (
        condition.status
        if condition.status == "True"
        else f"{condition.status}: {condition.reason}"
    )


def schedule_table(views: Sequence[ScheduleView], now: datetime | None = None) -> str:
    """``schedule list``: NAME SCHEDULE SUSPEND ACTIVE LAST-SCHEDULE NEXT READY."""
    rows = [("NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST-SCHEDULE", "NEXT", "READY")]
    rows += [
        (
            v.name,
            timing(v),
            str(v.suspend).lower(),
            str(len(v.active)),
            age(v.last_schedule_time, now) if v.last_schedule_time else "<none>",
            v.next_schedule_time or "<none>",
            _ready(v.ready),
        )
        for v in views
    ]
    return columns(rows)


def schedule_details(view: ScheduleView) -> str:
    """``schedule get``: the schedule, its runs, its active tasks and Ready."""
    ready = view.ready
    lines = [
        f"Name:               {view.name}",
        f"Namespace:          {view.namespace}",
        f"Schedule:           {timing(view)}",
        f"Queue:              {view.queue}",
        f"Concurrency:        {view.concurrency_policy}",
        f"Suspend:            {str(view.suspend).lower()}",
        f"Last schedule:      {view.last_schedule_time or '<none>'}",
        f"Last successful:    {view.last_successful_time or '<none>'}",
        f"Next schedule:      {view.next_schedule_time or '<none>'}",
        "Ready:              "
        + (f"{ready.status} {ready.reason or ''}: {ready.message or ''}" if ready else "<unknown>"),
        "Active:             " + (", ".join(a.name for a in view.active) or "<none>"),
        f"Tasks:              asynctask list -l asynctask.dev/schedule={view.name}",
    ]
    return "\n".join(lines)


def _rate(view: QueueView) -> str:
    if view.rate_limit is None:
        return "<none>"
    burst = f" burst {view.rate_limit.burst}" if view.rate_limit.burst else ""
    return f"{view.rate_limit.per_second:g}/s{burst}"


def queue_table(views: Sequence[QueueView]) -> str:
    """``queue list``: NAME PAUSED HELD IN-FLIGHT READY CONSUMERS RATE MAX-IN-FLIGHT."""
    rows = [("NAME", "PAUSED", "HELD", "IN-FLIGHT", "READY", "CONSUMERS", "RATE", "MAX-IN-FLIGHT")]
    rows += [
        (
            v.name,
            str(v.paused).lower(),
            str(v.held),
            str(v.in_flight),
            str(v.ready),
            str(v.consumers),
            "<none>" if v.start_rate is None else f"{v.start_rate:g}/s",
            "<none>" if v.max_in_flight is None else str(v.max_in_flight),
        )
        for v in views
    ]
    return columns(rows)


def queue_details(view: QueueView) -> str:
    """``queue get``: the policy, the counts and the conditions."""
    lines = [
        f"Name:           {view.name}",
        f"Paused:         {str(view.paused).lower()}",
        f"Max in flight:  {view.max_in_flight if view.max_in_flight is not None else '<none>'}",
        f"Rate limit:     {_rate(view)}",
        f"Held:           {view.held}",
        f"In flight:      {view.in_flight}",
        f"Ready:          {view.ready}",
        f"Consumers:      {view.consumers}",
        "Start rate:     " + ("<none>" if view.start_rate is None else f"{view.start_rate:g}/s"),
        f"Oldest held:    {view.oldest_held_time or '<none>'}",
    ]
    lines += _conditions([c.model_dump() for c in view.conditions])
    return "\n".join(lines)


def plain_line(view: TaskView) -> str:
    """One line per state off a terminal (``watch``, ``--wait`` in a pipe or a log)."""
    line = f"{view.name} {view.phase.value} {view.progress}%"
    return f"{line} {view.message}" if view.message else line


def clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclass
class Rate:
    """An estimate of the time left from the progress rate since the first progress seen
    while Processing (the time spent queued says nothing about the running time)."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def add(self, at: float, view: TaskView) -> None:
        if view.phase is Phase.PROCESSING and (
            not self.samples or view.progress != self.samples[-1][1]
        ):
            self.samples.append((at, view.progress))

    def eta(self, now: float) -> float | None:
        if len(self.samples) < 2:
            return None
        (t0, p0), (t1, p1) = self.samples[0], self.samples[-1]
        if p1 <= p0 or t1 <= t0:
            return None
        left = (100 - p1) * (t1 - t0) / (p1 - p0) - (now - t1)
        return max(left, 0.0)


def bar_line(view: TaskView, elapsed: float, eta: float | None, width: int) -> str:
    """The live line: ``name [=====>    ]  45% Processing  step 2 of 4  0:12 ETA 0:15``."""
    size = max(10, min(40, width // 4))
    filled = size * view.progress // 100
    bar = "=" * filled + (">" if filled < size else "") + " " * max(size - filled - 1, 0)
    tail = f"{clock(elapsed)}" + (f" ETA {clock(eta)}" if eta is not None and not view.done else "")
    head = f"{view.name} [{bar}] {view.progress:3d}% {view.phase.value}"
    room = width - len(head) - len(tail) - 4
    message = (view.message or "").replace("\n", " ")
    message = "" if message == view.phase.value else message
    message = message[:room] if room > 0 else ""
    return f"{head}  {message}  {tail}" if message else f"{head}  {tail}"


def describe(details: Details, now: datetime | None = None) -> str:
    """``describe``: the view, then spec, conditions, webhook delivery and Events when the
    transport has them (the Kubernetes API does; the gateway serves views only)."""
    v = details.view
    lines = [
        f"Name:         {v.name}",
        f"Namespace:    {v.namespace}",
        f"Phase:        {v.phase.value}",
        f"Progress:     {v.progress}%",
        f"Message:      {v.message or ''}",
        f"Attempts:     {v.attempts}",
        f"Created:      {v.created_at or ''}",
        f"Started:      {v.start_time or ''}",
        f"Completed:    {v.completion_time or ''}",
    ]
    if details.spec is not None:
        lines.append(f"Queue:        {details.spec.get('queue', '')}")
    lines.append(f"Priority:     {v.priority}")
    if v.phase is Phase.PENDING and v.reason:
        lines.append(f"Held:         {v.reason}")
    if v.result is not None:
        lines.append(f"Result:       {json.dumps(v.result, ensure_ascii=False)}")
    if v.error is not None:
        lines.append(f"Error:        {v.error.reason}: {v.error.message}")
        if v.error.traceback:
            lines += ["Traceback:", *("  " + t for t in v.error.traceback.splitlines())]
    if details.status is None:
        lines.append(
            "(conditions, webhook delivery and Events: through the Kubernetes API "
            "only, not the gateway)"
        )
        return "\n".join(lines)
    lines += _conditions(details.status.get("conditions") or [])
    webhook = details.status.get("webhook")
    lines.append(
        "Webhook:      " + (json.dumps(webhook, ensure_ascii=False) if webhook else "<none>")
    )
    lines += _events(details.events, now)
    return "\n".join(lines)


def _conditions(conditions: list[dict[str, Any]]) -> list[str]:
    lines = ["Conditions:", "  TYPE          STATUS  REASON"]
    lines += [
        f"  {c.get('type', ''):<13} {c.get('status', ''):<7} {c.get('reason', '')}"
        for c in conditions
    ]
    return lines if conditions else ["Conditions:   <none>"]


def _events(events: list[dict[str, Any]] | None, now: datetime | None) -> list[str]:
    if events is None:
        return ["Events:       <not allowed to list events here>"]
    if not events:
        return ["Events:       <none>"]
    lines = ["Events:", "  TYPE      REASON         AGE   MESSAGE"]
    for e in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
        when = e.get("lastTimestamp") or e.get("eventTime") or e.get("firstTimestamp")
        lines.append(
            f"  {e.get('type', ''):<9} {e.get('reason', ''):<14} "
            f"{age(when, now):<5} {e.get('message', '')}"
        )
    return lines
