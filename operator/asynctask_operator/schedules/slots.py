"""When a schedule's slots fall, and which of them to run after a gap (pure).

A **slot** is an instant (UTC, whole seconds) at which a schedule wants a task. Two kinds of
timetable give them:

* :class:`Cron`: a 5-field cron expression (or an ``@hourly``-style macro) read in an IANA
  time zone, evaluated by ``cronsim`` (a maintained, typed library without dependencies; we
  do not parse cron ourselves). Daylight-saving transitions follow cron's own (Debian
  cron's, which ``cronsim`` implements) rule: a slot whose wall-clock time falls in an hour
  that is **skipped** (spring forward) runs once, at the first instant after the gap
  (02:30 → 03:00); a slot in an hour that is **repeated** (fall back) runs once, at its
  first occurrence, when the expression names a fixed hour, while an expression that fires
  every hour (``*`` or a step in the hour field) fires in both copies of the hour, since each
  is a real hour.
* :class:`Interval`: every ``seconds`` seconds, counted from an anchor (the schedule's
  creation time), so the slots are the same whichever operator computes them and however
  often it restarts: ``anchor + k * seconds`` for k ≥ 1.

The **missed-slot policy** (:func:`catch_up`): of the slots that fell due while nobody
acted on them, at most the latest runs, and only within ``startingDeadlineSeconds`` of its
time; the others are recorded as missed. Counting them is arithmetic for an interval and
bounded for cron (:data:`MAX_COUNTED`), so a long outage is never a storm of catch-up runs
nor a "too many missed start times" dead end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

#: The macros the CRD accepts, as the 5 fields they stand for.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: How many missed cron slots one catch-up counts at most (then it counts no further: the
#: count is a lower bound, the plan the same).
MAX_COUNTED = 10_000


class InvalidTimetable(ValueError):
    """A schedule the operator cannot read: ``reason`` is the Ready condition's reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class Cron:
    expression: str  # 5 fields (a macro already expanded)
    zone: ZoneInfo

    def next_after(self, t: datetime) -> datetime:
        local = t.astimezone(self.zone).replace(microsecond=0)
        return _utc(next(CronSim(self.expression, local)))

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        # cronsim's reverse iteration starts strictly before its start: begin a second on.
        start = (t.astimezone(self.zone) + timedelta(seconds=1)).replace(microsecond=0)
        try:
            return _utc(next(CronSim(self.expression, start, reverse=True)))
        except StopIteration:
            return None

    def count_between(self, after: datetime, until: datetime) -> int:
        """How many slots in (after, until], at most :data:`MAX_COUNTED`."""
        count = 0
        it = CronSim(self.expression, after.astimezone(self.zone).replace(microsecond=0))
        for slot in it:
            if _utc(slot) > until or count >= MAX_COUNTED:
                break
            count += 1
        return count


@dataclass(frozen=True)
class Interval:
    seconds: int
    anchor: datetime  # UTC, whole seconds

    def next_after(self, t: datetime) -> datetime:
        k = max(1, int((t - self.anchor).total_seconds() // self.seconds) + 1)
        slot = self.anchor + timedelta(seconds=k * self.seconds)
        while slot <= t:  # fractions of a second in t
            slot += timedelta(seconds=self.seconds)
        return slot

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        k = int((t - self.anchor).total_seconds() // self.seconds)
        return self.anchor + timedelta(seconds=k * self.seconds) if k >= 1 else None

    def count_between(self, after: datetime, until: datetime) -> int:
        def index(t: datetime) -> int:
            return max(0, int((t - self.anchor).total_seconds() // self.seconds))

        return max(0, index(until) - index(after))


Timetable = Cron | Interval


def timetable(
    schedule: str | None, interval_seconds: int | None, time_zone: str | None, anchor: datetime
) -> Timetable:
    """The timetable a schedule's spec describes, or :class:`InvalidTimetable` with the
    reason (``InvalidSchedule``, ``InvalidTimeZone``) and a message for its Ready
    condition. The CRD refuses most bad input first; this catches what CEL cannot (a
    field out of range, an unknown zone)."""
    if (schedule is None) == (interval_seconds is None):
        raise InvalidTimetable("InvalidSchedule", "set exactly one of schedule and intervalSeconds")
    if interval_seconds is not None:
        if interval_seconds < 1:
            raise InvalidTimetable("InvalidSchedule", "intervalSeconds must be at least 1")
        return Interval(interval_seconds, anchor.astimezone(UTC).replace(microsecond=0))
    assert schedule is not None
    zone = _zone(time_zone or "UTC")
    expression = MACROS.get(schedule.strip().lower(), schedule.strip())
    try:
        CronSim(expression, datetime(2000, 1, 1, tzinfo=zone))
    except CronSimError as exc:
        raise InvalidTimetable("InvalidSchedule", f"schedule {schedule!r}: {exc}") from exc
    return Cron(expression, zone)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidTimetable("InvalidTimeZone", f"unknown time zone {name!r}") from exc


@dataclass(frozen=True)
class CatchUp:
    """What to do about the slots in (handled, now]."""

    run: datetime | None  # the one slot to run now, if any
    missed: int  # slots recorded as missed
    last_missed: datetime | None
    next: datetime  # the first slot after now


def catch_up(
    table: Timetable,
    handled: datetime,
    now: datetime,
    starting_deadline_seconds: int | None,
    already_run: frozenset[datetime] = frozenset(),
) -> CatchUp:
    """The slots after ``handled`` (the latest slot already acted on, or the time from which
    slots count) up to ``now``: at most the latest runs, if it is within the starting
    deadline (None: no deadline); every other one is missed, except those in
    ``already_run`` (a task exists for it: a run whose status write was cut short)."""
    nxt = table.next_after(now)
    latest = table.latest_at_or_before(now)
    if latest is None or latest <= handled:
        return CatchUp(None, 0, None, nxt)
    due = table.count_between(handled, now)
    known = sum(1 for slot in already_run if handled < slot <= now)
    on_time = starting_deadline_seconds is None or (
        (now - latest).total_seconds() <= starting_deadline_seconds
    )
    run = latest if latest in already_run or on_time else None
    missed = max(0, due - known - (1 if run is not None and run not in already_run else 0))
    start = latest if run is None else table.latest_at_or_before(latest - timedelta(seconds=1))
    last = _latest_missed(table, start, handled, already_run) if missed else None
    return CatchUp(run, missed, last, nxt)


def _latest_missed(
    table: Timetable, slot: datetime | None, handled: datetime, already_run: frozenset[datetime]
) -> datetime | None:
    """The latest slot at or before ``slot``, after ``handled``, that no task ran."""
    for _ in range(len(already_run) + 1):
        if slot is None or slot <= handled:
            return None
        if slot not in already_run:
            return slot
        slot = table.latest_at_or_before(slot - timedelta(seconds=1))
    return None


def _utc(t: datetime) -> datetime:
    return t.astimezone(UTC)
