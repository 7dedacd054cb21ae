"""The archive's partitions: names, ranges, and which retention drops (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from asynctask_operator.archive.schema import (
    MIGRATIONS,
    day_of,
    days_ahead,
    expired,
    partition_day,
    partition_ddl,
    partition_name,
)


def test_a_partition_is_named_by_its_utc_day_and_read_back() -> None:
    assert partition_name(date(2026, 12, 5)) == "asynctask_history_p20261205"
    assert partition_day("asynctask_history_p20261205") == date(2026, 12, 5)
    assert partition_day("asynctask_history_pdefault") is None
    assert partition_day("other_p20261205") is None


def test_a_partition_holds_one_utc_day() -> None:
    ddl = partition_ddl(date(2026, 12, 31))
    assert "FROM ('2026-12-31T00:00:00+00:00') TO ('2027-01-01T00:00:00+00:00')" in ddl
    assert ddl.startswith("CREATE TABLE IF NOT EXISTS asynctask_history_p20261231 PARTITION OF")


def test_the_day_of_a_time_is_its_utc_day() -> None:
    from datetime import timedelta, timezone

    late_in_tokyo = datetime(2026, 12, 6, 8, 0, tzinfo=timezone(timedelta(hours=9)))
    assert day_of(late_in_tokyo) == date(2026, 12, 5)
    assert day_of(datetime(2026, 12, 5, 23, 59, tzinfo=UTC)) == date(2026, 12, 5)


def test_partitions_are_made_for_today_and_the_days_ahead() -> None:
    assert days_ahead(date(2026, 12, 31), 2) == [
        date(2026, 12, 31),
        date(2027, 1, 1),
        date(2027, 1, 2),
    ]


def test_retention_drops_only_days_wholly_before_its_window() -> None:
    names = [partition_name(date(2026, 12, d)) for d in range(1, 6)] + ["asynctask_history"]
    assert expired(names, date(2026, 12, 5), 3) == [
        "asynctask_history_p20261201",
    ]
    assert expired(names, date(2026, 12, 5), 30) == []


def test_migrations_are_numbered_from_one_without_gaps() -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
