"""``--at`` and ``--in``: what a person types, turned into one absolute UTC time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from asynctask_client import cli
from asynctask_client.when import due_time, parse_at, parse_delay, rfc3339

NOW = datetime(2026, 12, 5, 10, 30, 15, tzinfo=UTC)


def test_a_time_of_day_is_read_in_utc_today_if_still_ahead_else_tomorrow() -> None:
    assert parse_at("12:00", NOW) == datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert parse_at("12:00:30Z", NOW) == datetime(2026, 12, 5, 12, 0, 30, tzinfo=UTC)
    assert parse_at("09:00", NOW) == datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
    assert parse_at("10:30:15", NOW) == datetime(2026, 12, 6, 10, 30, 15, tzinfo=UTC)


def test_a_time_of_day_is_utc_whatever_zone_now_is_given_in() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=5)))  # 15:30 there
    assert parse_at("12:00", local) == datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def test_an_rfc3339_time_is_taken_as_given_and_turned_to_utc() -> None:
    assert parse_at("2026-12-05T13:00:00+01:00", NOW) == datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert parse_at("2027-01-01T00:00:00Z", NOW) == datetime(2027, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", ["noon", "25:00", "12:60", "2026-12-05T12:00:00", "2026-12-05"])
def test_anything_else_is_refused_with_the_forms_it_takes(text: str) -> None:
    with pytest.raises(ValueError, match="RFC 3339"):
        parse_at(text, NOW)


def test_delays_take_seconds_or_units() -> None:
    assert parse_delay("90") == timedelta(seconds=90)
    assert parse_delay("10m") == timedelta(minutes=10)
    assert parse_delay("1h30m") == timedelta(hours=1, minutes=30)
    assert parse_delay("1d") == timedelta(days=1)
    for bad in ("10 minutes", "-5s", "1.5h", ""):
        with pytest.raises(ValueError, match="delay"):
            parse_delay(bad)


def test_the_due_time_is_absolute_and_at_and_in_exclude_each_other() -> None:
    assert due_time(None, "10m", NOW) == NOW + timedelta(minutes=10)
    assert due_time("12:00", None, NOW) == datetime(2026, 12, 5, 12, tzinfo=UTC)
    assert due_time(None, None, NOW) is None
    with pytest.raises(ValueError, match="not both"):
        due_time("12:00", "10m", NOW)


def test_the_spec_carries_utc_whole_seconds_or_the_fraction() -> None:
    assert rfc3339(datetime(2026, 12, 5, 12, tzinfo=UTC)) == "2026-12-05T12:00:00Z"
    assert rfc3339(datetime(2026, 12, 5, 12, 0, 0, 500000, tzinfo=UTC)) == "2026-12-05T12:00:00.5Z"


def test_the_submit_command_takes_at_and_in() -> None:
    args = cli.parser().parse_args(["submit", "q", "--in", "10m"])
    assert (args.at, args.delay) == (None, "10m")
    args = cli.parser().parse_args(["submit", "q", "--at", "12:00"])
    assert (args.at, args.delay) == ("12:00", None)


def test_a_bad_at_exits_2_before_any_connection(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["submit", "q", "--at", "noon", "--gateway", "http://127.0.0.1:9"]) == 2
    assert "--at 'noon'" in capsys.readouterr().err
