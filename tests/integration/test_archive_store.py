"""The history archive's store against a real PostgreSQL (the test bed's, a database per
test): migrations once under a lock, upserts by uid, payloads jsonb refuses, the indexes the
listings use, and retention by whole partitions."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from asynctask_operator.archive.migrate import LEDGER, backfill, migrate
from asynctask_operator.archive.record import decode, record_of
from asynctask_operator.archive.schema import (
    MIGRATIONS,
    TABLE,
    day_of,
    partition_ddl,
    partition_name,
)
from asynctask_operator.archive.store import UPSERT, PostgresArchive

pytestmark = pytest.mark.asyncio
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def task(uid: str, *, finished: datetime = NOW, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "metadata": {
            "namespace": "ns",
            "name": f"t-{uid}",
            "uid": uid,
            "labels": {"app": "a"},
            "annotations": {"asynctask.dev/created-by": "alice"},
            "creationTimestamp": "2026-12-05T11:59:00Z",
        },
        "spec": {"queue": "q", "request": {"n": 1}},
        "status": {
            "phase": "Succeeded",
            "attempts": 1,
            "worker": "w-1",
            "result": {"ok": True},
            "completionTime": finished.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
    }
    for key, value in extra.items():
        body[key].update(value)
    return body


async def rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(sql.encode(), args)
        return await cur.fetchall()


async def read_back(url: str, uid: str) -> dict[str, Any]:
    """Every payload of one row, decoded as a reader does."""
    cols = ("request", "result", "error", "annotations", "status")
    select = ", ".join(f"{c}, {c}_text" for c in cols)
    (row,) = await rows(url, f"SELECT {select}, labels FROM {TABLE} WHERE uid = %s", uid)
    out = {c: decode(row[2 * i], row[2 * i + 1]) for i, c in enumerate(cols)}
    out["labels"] = row[-1]
    return out


async def test_replicas_starting_together_apply_each_migration_once(database_url: str) -> None:
    async def one() -> list[int]:
        async with await psycopg.AsyncConnection.connect(database_url) as conn:
            return await migrate(conn)

    results = await asyncio.gather(*(one() for _ in range(4)))
    assert sorted(results) == [[], [], [], [m.version for m in MIGRATIONS]]
    assert await rows(database_url, f"SELECT count(*) FROM {LEDGER}") == [(len(MIGRATIONS),)]


async def test_rows_archived_before_labels_key_are_backfilled_in_batches(
    database_url: str,
) -> None:
    """Rows written before the copy existed (NULL ``labels_key``, as migration 2 left
    them): migration 3 copies short labels, one page range at a time, and leaves long ones
    NULL (the reader checks those on their full labels)."""
    long = {f"k{i:02d}.example.com/label": "v" * 63 for i in range(30)}
    bodies = [task(f"u{n:03d}", metadata={"labels": {"app": f"a{n % 3}"}}) for n in range(200)]
    bodies += [task("long", metadata={"labels": long})]
    records = [dataclasses.replace(r, labels_key=None) for b in bodies if (r := record_of(b))]
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await migrate(conn, MIGRATIONS[:2]) == [1, 2]
        await conn.execute(partition_ddl(day_of(NOW)).encode())
        async with conn.cursor() as cur:
            await cur.executemany(UPSERT, [r.row() for r in records])
        pages = await (
            await conn.execute(b"SELECT pg_relation_size(%s) / 8192", (partition_name(NOW.date()),))
        ).fetchone()
        assert pages is not None and pages[0] > 3  # several batches of one page below
        # Half the work, as a run stopped halfway would have left it: then the migration.
        assert await backfill(conn, MIGRATIONS[2].backfill, step=1) == 200
        await conn.execute(f"UPDATE {TABLE} SET labels_key = NULL WHERE uid < 'u100'".encode())
        assert await migrate(conn) == [3, 4]
    got = dict(await rows(database_url, f"SELECT uid, labels_key FROM {TABLE}"))
    assert len(got) == 201 and got.pop("long") is None
    assert got == {f"u{n:03d}": {"app": f"a{n % 3}"} for n in range(200)}


async def test_rows_are_upserted_by_uid_and_read_back_whole(database_url: str) -> None:
    archive = PostgresArchive(database_url, pool_size=2)
    await archive.open()
    try:
        first = record_of(task("u1"))
        later = record_of(task("u1", status={"webhook": {"delivered": True}}))
        assert first is not None and later is not None
        await archive.upsert([first, record_of(task("u2"))])  # type: ignore[list-item]
        await archive.upsert([first])  # at-least-once: the same row again
        await archive.upsert([later])
        got = await rows(
            database_url,
            f"SELECT uid, namespace, name, queue, phase, creator, worker, attempts, "
            f"status->'webhook' FROM {TABLE} ORDER BY uid",
        )
        assert got == [
            ("u1", "ns", "t-u1", "q", "Succeeded", "alice", "w-1", 1, {"delivered": True}),
            ("u2", "ns", "t-u2", "q", "Succeeded", "alice", "w-1", 1, None),
        ]
        back = await read_back(database_url, "u1")
        assert back["request"] == {"n": 1} and back["result"] == {"ok": True}
        assert back["labels"] == {"app": "a"}
    finally:
        await archive.close()


async def test_nul_bytes_surrogates_deep_json_and_huge_labels_read_back_exactly(
    database_url: str,
) -> None:
    deep: Any = "bottom"
    for _ in range(500):
        deep = {"d": deep}
    labels = {f"k{i:04d}.example.com/label": "v" * 63 for i in range(2000)}
    body = task(
        "edge",
        metadata={"labels": labels, "annotations": {"note": "a\x00b"}},
        spec={"request": {"text": "nul\x00inside", "\x00key": ["\x00"], "s": "\ud800"}},
        status={"result": deep, "error": {"reason": "X", "traceback": "line\x00" * 10_000}},
    )
    record = record_of(body)
    assert record is not None and record.request is None and record.request_text is not None
    archive = PostgresArchive(database_url)
    await archive.open()
    try:
        await archive.upsert([record])
    finally:
        await archive.close()
    back = await read_back(database_url, "edge")
    assert back["request"] == body["spec"]["request"]
    assert back["result"] == deep
    assert back["error"] == body["status"]["error"]
    assert back["annotations"]["note"] == "a\x00b"
    assert back["labels"] == labels
    # Too long for the keyset index's bounded copy: none is kept (the reader then checks
    # the full labels); a short one is kept whole.
    assert record.labels_key is None
    short = record_of(task("short"))
    assert short is not None and short.labels_key == short.labels == '{"app":"a"}'
    # The labels are jsonb: containment finds the row.
    found = await rows(
        database_url,
        f"SELECT uid FROM {TABLE} WHERE labels @> %s::jsonb",
        json.dumps({"k1999.example.com/label": "v" * 63}),
    )
    assert found == [("edge",)]


async def test_the_listing_queries_use_the_indexes(database_url: str) -> None:
    archive = PostgresArchive(database_url)
    await archive.open()
    try:
        await archive.upsert([r for i in range(300) if (r := record_of(task(f"x{i:03d}")))])
    finally:
        await archive.close()
    plans = {
        "namespace + time keyset": (
            f"SELECT uid FROM {TABLE} WHERE namespace = 'ns' AND (finished_at, uid) < "
            f"(now(), 'z') ORDER BY finished_at DESC, uid DESC LIMIT 50"
        ),
        "queue + phase": (
            f"SELECT uid FROM {TABLE} WHERE namespace = 'ns' AND queue = 'q' AND "
            f"phase = 'Failed' ORDER BY finished_at DESC, uid DESC LIMIT 50"
        ),
        "labels": (
            f"SELECT uid FROM {TABLE} WHERE namespace = 'ns' AND (labels_key IS NULL OR "
            f'labels_key @> \'{{"app": "b"}}\')'
        ),
    }
    # A label-selected page's keys come from the index alone (no table read).
    keys = (
        f"SELECT finished_at, uid FROM {TABLE} WHERE namespace = 'ns' AND (labels_key IS "
        f'NULL OR (labels_key @> \'{{"app": "a"}}\')) ORDER BY finished_at DESC, uid DESC '
        "LIMIT 50"
    )
    async with await psycopg.AsyncConnection.connect(database_url) as conn:
        await conn.execute("ANALYZE " + TABLE)
        await conn.execute("SET enable_seqscan = off")  # a tiny table: ask what it could use
        for what, sql in plans.items():
            cur = await conn.execute(("EXPLAIN " + sql).encode())
            plan = "\n".join(str(r[0]) for r in await cur.fetchall())
            assert "Seq Scan" not in plan, f"{what}:\n{plan}"
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        await conn.execute("VACUUM " + TABLE)  # the visibility map index-only scans need
        await conn.execute("SET enable_seqscan = off")
        await conn.execute("SET enable_bitmapscan = off")
        plan = "\n".join(
            str(r[0]) for r in await (await conn.execute("EXPLAIN " + keys)).fetchall()
        )
        assert "Index Only Scan using asynctask_history_p" in plan, plan


async def test_retention_drops_whole_partitions_of_days_past_it(database_url: str) -> None:
    archive = PostgresArchive(database_url)
    await archive.open()
    try:
        old = [record_of(task(f"d{n}", finished=NOW - timedelta(days=n))) for n in range(6)]
        await archive.upsert([r for r in old if r is not None])
        dropped = await archive.maintain(retention_days=3, now=NOW)
        assert dropped == [partition_name((NOW - timedelta(days=n)).date()) for n in (5, 4)]
        left = await rows(database_url, f"SELECT uid FROM {TABLE} ORDER BY uid")
        assert left == [("d0",), ("d1",), ("d2",), ("d3",)]
        # The coming days' partitions exist before any row needs them.
        tables = await rows(database_url, "SELECT tablename FROM pg_tables")
        assert (partition_name((NOW + timedelta(days=2)).date()),) in tables
        # A row for a day whose partition retention just dropped is written again.
        again = record_of(task("late", finished=NOW - timedelta(days=5)))
        assert again is not None
        await archive.upsert([again])
        assert await rows(database_url, f"SELECT uid FROM {TABLE} WHERE uid = 'late'") == [
            ("late",)
        ]
    finally:
        await archive.close()


async def test_archived_uids_says_which_uids_have_a_row(database_url: str) -> None:
    archive = PostgresArchive(database_url)
    await archive.open()
    try:
        records = [record_of(task("u1")), record_of(task("u2", finished=NOW - timedelta(days=1)))]
        await archive.upsert([r for r in records if r is not None])
        assert await archive.archived_uids(["u1", "u2", "u3"]) == {"u1", "u2"}
        assert await archive.archived_uids([]) == set()
    finally:
        await archive.close()
