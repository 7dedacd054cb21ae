"""The archive's partitions: names, ranges, and which retention drops (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from asynctask_operator.archive.schema import (
    LABELS_KEY_MAX,
    MIGRATIONS,
    block_ranges,
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


def test_a_backfill_covers_every_page_once_in_batches() -> None:
    assert block_ranges(0) == []
    assert block_ranges(5, 2) == [("(0,0)", "(2,0)"), ("(2,0)", "(4,0)"), ("(4,0)", "(5,0)")]
    assert block_ranges(4, 2) == [("(0,0)", "(2,0)"), ("(2,0)", "(4,0)")]
    assert len(block_ranges(10_000)) == 3  # 4,096 pages a batch


def test_the_labels_key_backfill_is_batched_bounded_and_skips_rows_done() -> None:
    (backfill,) = [m for m in MIGRATIONS if m.backfill]
    assert backfill.sql == ""  # nothing that could not run twice
    sql = backfill.backfill.format(partition="asynctask_history_p20261205")
    assert sql.startswith("UPDATE asynctask_history_p20261205 SET labels_key = labels WHERE")
    assert "ctid >= %s::tid AND ctid < %s::tid" in sql and sql.count("%s") == 2
    assert "labels_key IS NULL" in sql and f"<= {LABELS_KEY_MAX}" in sql
