"""Slot computation: cron in time zones, daylight saving, intervals, the missed-slot policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from asynctask_operator.schedules.slots import (
    Cron,
    Interval,
    InvalidTimetable,
    catch_up,
    timetable,
)

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 12, 5, 12, 0, 0, tzinfo=UTC)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def cron(expression: str, zone: str = "UTC") -> Cron:
    table = timetable(expression, None, zone, T0)
    assert isinstance(table, Cron)
    return table


def test_a_cron_slot_is_strictly_after_the_time_given() -> None:
    table = cron("*/15 * * * *")
    assert table.next_after(utc(2026, 12, 5, 12, 0, 0)) == utc(2026, 12, 5, 12, 15)
    assert table.next_after(utc(2026, 12, 5, 12, 14, 59)) == utc(2026, 12, 5, 12, 15)
    assert table.next_after(datetime(2026, 12, 5, 12, 0, 0, 500, tzinfo=UTC)) == utc(
        2026, 12, 5, 12, 15
    )
    assert table.latest_at_or_before(utc(2026, 12, 5, 12, 15)) == utc(2026, 12, 5, 12, 15)
    assert table.latest_at_or_before(utc(2026, 12, 5, 12, 29, 59)) == utc(2026, 12, 5, 12, 15)


def test_macros_are_their_five_fields() -> None:
    assert cron("@hourly").next_after(utc(2026, 12, 5, 12, 1)) == utc(2026, 12, 5, 13)
    assert cron("@daily").next_after(utc(2026, 12, 5, 12, 1)) == utc(2026, 12, 6)
    assert cron("@weekly").next_after(utc(2026, 12, 5, 12)) == utc(2026, 12, 6)  # a Sunday
    assert cron("@yearly").next_after(utc(2026, 12, 5)) == utc(2027, 1, 1)


def test_a_cron_is_read_in_its_time_zone() -> None:
    table = cron("0 9 * * *", "Europe/Berlin")  # 09:00 in Berlin is 08:00 UTC in winter
    assert table.next_after(utc(2026, 12, 5, 7)) == utc(2026, 12, 5, 8)
    assert cron("0 9 * * *", "America/New_York").next_after(utc(2026, 12, 5, 7)) == utc(
        2026, 12, 5, 14
    )


def test_a_slot_in_the_skipped_hour_runs_once_at_the_end_of_the_gap() -> None:
    """Berlin, 2026-03-29: 02:00 CET jumps to 03:00 CEST. 02:30 does not exist that day:
    the slot runs at 03:00 CEST (01:00 UTC), once; the next day at 02:30 CEST again."""
    table = cron("30 2 * * *", "Europe/Berlin")
    first = table.next_after(utc(2026, 3, 28, 12))
    assert first == utc(2026, 3, 29, 1, 0)
    assert first.astimezone(BERLIN).hour == 3
    assert table.next_after(first) == utc(2026, 3, 30, 0, 30)


def test_a_fixed_slot_in_the_repeated_hour_runs_once_at_its_first_occurrence() -> None:
    """Berlin, 2026-10-25: 03:00 CEST falls back to 02:00 CET, 02:30 happens twice. A
    daily 02:30 runs once, at the first (00:30 UTC), not again an hour later."""
    table = cron("30 2 * * *", "Europe/Berlin")
    first = table.next_after(utc(2026, 10, 24, 12))
    assert first == utc(2026, 10, 25, 0, 30)
    assert table.next_after(first) == utc(2026, 10, 26, 1, 30)


def test_an_every_half_hour_cron_fires_in_both_copies_of_the_repeated_hour() -> None:
    table = cron("*/30 * * * *", "Europe/Berlin")
    slot, slots = utc(2026, 10, 24, 23, 50), []
    for _ in range(6):
        slot = table.next_after(slot)
        slots.append(slot)
    assert slots == [utc(2026, 10, 25, 0, 0) + timedelta(minutes=30 * i) for i in range(6)]


def test_interval_slots_are_anchored_to_the_creation_time() -> None:
    anchor = utc(2026, 12, 5, 12, 0, 7)
    table = timetable(None, 10, None, anchor.replace(microsecond=0))
    assert isinstance(table, Interval)
    assert table.next_after(anchor) == anchor + timedelta(seconds=10)
    assert table.next_after(anchor - timedelta(hours=1)) == anchor + timedelta(seconds=10)
    assert table.next_after(anchor + timedelta(seconds=10)) == anchor + timedelta(seconds=20)
    assert table.next_after(anchor + timedelta(seconds=25.5)) == anchor + timedelta(seconds=30)
    assert table.latest_at_or_before(anchor + timedelta(seconds=9)) is None
    assert table.latest_at_or_before(anchor + timedelta(seconds=29)) == anchor + timedelta(
        seconds=20
    )
    assert table.count_between(anchor, anchor + timedelta(seconds=30)) == 3


def test_the_anchor_drops_fractions_so_slots_are_whole_seconds() -> None:
    table = timetable(None, 3, None, datetime(2026, 12, 5, 12, 0, 0, 900_000, tzinfo=UTC))
    assert table.next_after(T0) == utc(2026, 12, 5, 12, 0, 3)


@pytest.mark.parametrize(
    ("schedule", "interval", "zone", "reason"),
    [
        ("61 * * * *", None, None, "InvalidSchedule"),
        ("* * * *", None, None, "InvalidSchedule"),
        ("@reboot", None, None, "InvalidSchedule"),
        ("0 3 * * *", None, "Mars/Olympus_Mons", "InvalidTimeZone"),
        ("0 3 * * *", None, "../etc/passwd", "InvalidTimeZone"),
        (None, 0, None, "InvalidSchedule"),
        (None, None, None, "InvalidSchedule"),
        ("@hourly", 5, None, "InvalidSchedule"),
    ],
)
def test_what_cannot_be_read_says_why(
    schedule: str | None, interval: int | None, zone: str | None, reason: str
) -> None:
    with pytest.raises(InvalidTimetable) as caught:
        timetable(schedule, interval, zone, T0)
    assert caught.value.reason == reason and caught.value.message


EVERY_10S = Interval(10, T0)


def test_nothing_due_plans_only_the_next_slot() -> None:
    plan = catch_up(EVERY_10S, T0, T0 + timedelta(seconds=5), None)
    assert (plan.run, plan.missed, plan.next) == (None, 0, T0 + timedelta(seconds=10))


def test_one_due_slot_runs_and_nothing_is_missed() -> None:
    plan = catch_up(EVERY_10S, T0, T0 + timedelta(seconds=10.2), None)
    assert (plan.run, plan.missed, plan.last_missed) == (T0 + timedelta(seconds=10), 0, None)
    assert plan.next == T0 + timedelta(seconds=20)


def test_after_a_long_gap_only_the_latest_runs_and_the_rest_are_missed() -> None:
    """A day down at one slot every 10 s: one run, 8639 missed, no storm, no dead end."""
    now = T0 + timedelta(days=1, seconds=3)
    plan = catch_up(EVERY_10S, T0, now, None)
    assert plan.run == T0 + timedelta(days=1)
    assert plan.missed == 8639
    assert plan.last_missed == T0 + timedelta(days=1, seconds=-10)


def test_the_latest_runs_only_within_the_starting_deadline() -> None:
    now = T0 + timedelta(seconds=37)  # slots at 10, 20, 30; the latest 7 s late
    assert catch_up(EVERY_10S, T0, now, 10).run == T0 + timedelta(seconds=30)
    late = catch_up(EVERY_10S, T0, now, 5)
    assert (late.run, late.missed, late.last_missed) == (None, 3, T0 + timedelta(seconds=30))
    assert catch_up(EVERY_10S, T0, now, 0).run is None


def test_slots_that_already_have_a_task_are_neither_missed_nor_run_again() -> None:
    """A run whose status write was cut short (a crash after the create): its task exists,
    so its slot is not counted missed; if it is the latest, it is the run (AlreadyExists)."""
    now = T0 + timedelta(seconds=31)
    ran = frozenset({T0 + timedelta(seconds=20)})
    plan = catch_up(EVERY_10S, T0, now, None, ran)
    assert (plan.run, plan.missed, plan.last_missed) == (
        T0 + timedelta(seconds=30),
        1,
        T0 + timedelta(seconds=10),
    )
    ran = frozenset({T0 + timedelta(seconds=30), T0 + timedelta(seconds=20)})
    plan = catch_up(EVERY_10S, T0, now, None, ran)
    assert (plan.run, plan.missed, plan.last_missed) == (
        T0 + timedelta(seconds=30),
        1,
        T0 + timedelta(seconds=10),
    )
    plan = catch_up(EVERY_10S, T0, now, 0, frozenset({T0 + timedelta(seconds=30)}))
    assert plan.run == T0 + timedelta(seconds=30) and plan.missed == 2


def test_a_cron_gap_counts_its_missed_slots_up_to_a_bound() -> None:
    table = cron("* * * * *")
    plan = catch_up(table, T0, T0 + timedelta(minutes=5, seconds=1), None)
    assert (plan.run, plan.missed) == (T0 + timedelta(minutes=5), 4)
    long = catch_up(table, T0, T0 + timedelta(days=30), None)
    assert long.run == T0 + timedelta(days=30) and long.missed == 10_000 - 1
