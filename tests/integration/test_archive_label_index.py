"""Migration 4 against a real PostgreSQL: the label index scoped by namespace, queue and
phase (``btree_gin``) on every partition, old and new, the bitmap of a label-selected page
taken from it with the namespace inside the index; and, where the extension cannot be
created, a warning and the unscoped index kept, the archive still working."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from asynctask_gateway.archive import ArchiveReader
from asynctask_gateway.history import HistoryQuery
from asynctask_operator.archive.migrate import migrate
from asynctask_operator.archive.record import record_of
from asynctask_operator.archive.schema import (
    MIGRATIONS,
    SCOPED_INDEX_MISSING,
    TABLE,
    day_of,
    partition_ddl,
)
from asynctask_operator.archive.store import PostgresArchive
from testbed import PostgreSQL

pytestmark = pytest.mark.asyncio
NOW = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
SCOPED = f"{TABLE}_ns_labels_key"
UNSCOPED = f"{TABLE}_labels_key"


def task(n: int) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": "ns",
            "name": f"t{n}",
            "uid": f"u{n}",
            "labels": {"app": f"a-{n}"},
        },
        "spec": {"queue": "q", "request": {"n": n}},
        "status": {
            "phase": "Succeeded",
            "completionTime": (NOW - timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


async def one(conn: psycopg.AsyncConnection[Any], sql: str, *args: Any) -> Any:
    row = await (await conn.execute(sql.encode(), args)).fetchone()
    assert row is not None
    return row[0]


async def partitions_indexed(conn: psycopg.AsyncConnection[Any], index: str) -> int:
    """How many partitions hold their part of the partitioned index ``index``."""
    return int(
        await one(conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = to_regclass(%s)", index)
    )


async def test_the_scoped_index_is_on_every_partition_and_the_bitmap_uses_it(
    database_url: str,
) -> None:
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await migrate(conn, MIGRATIONS[:3]) == [1, 2, 3]
        await conn.execute(partition_ddl(day_of(NOW)).encode())  # a day before migration 4
        assert await migrate(conn) == [4]
        assert await migrate(conn) == []
        assert await one(conn, "SELECT to_regclass(%s)", UNSCOPED) is None
        await conn.execute(partition_ddl(day_of(NOW + timedelta(days=1))).encode())  # after
        parts = await one(
            conn, "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass", TABLE
        )
        assert parts == 2 and await partitions_indexed(conn, SCOPED) == parts
        # Namespace, queue and phase each hold many rows; the label few: the GIN index is
        # the narrowest (as on the bench's 10M rows; on a tiny table the planner may prefer
        # the B-tree on namespace, queue and phase when those are narrow).
        await conn.execute(
            f"INSERT INTO {TABLE} (uid, finished_at, namespace, name, queue, phase, labels, "
            "labels_key) SELECT 'u' || i, %s::timestamptz - i * interval '1 second', "
            "'ns-' || (i %% 2), 't', 'q', 'Succeeded', l, l FROM "
            "generate_series(1, 5000) AS i, "
            "jsonb_build_object('app', 'a-' || (i %% 100)) AS l".encode(),
            (NOW,),
        )
        await conn.execute(f"VACUUM ANALYZE {TABLE}".encode())
        # The reader's bitmap statement's shape (history_plan.rest_statement), index scans
        # off as the reader has them: namespace, queue and phase inside the GIN index.
        await conn.execute(b"SET enable_indexscan = off; SET enable_seqscan = off")
        plan = "\n".join(
            str(r[0])
            for r in await (
                await conn.execute(
                    f"EXPLAIN SELECT finished_at, uid FROM {TABLE} WHERE namespace = 'ns-1' "
                    "AND queue = 'q' AND phase = 'Succeeded' AND (labels_key IS NULL OR "
                    """(labels_key @> '{"app": "a-3"}')) ORDER BY finished_at DESC, """
                    "uid DESC LIMIT 101".encode()
                )
            ).fetchall()
        )
    scans = [line for line in plan.splitlines() if "Bitmap Index Scan on" in line]
    gin = [i for i, line in enumerate(plan.splitlines()) if "namespace_queue_phase_labels" in line]
    assert gin, plan
    cond = plan.splitlines()[gin[0] + 1]
    assert "namespace = 'ns-1'" in cond and "labels_key @>" in cond, plan
    assert "queue = 'q'" in cond and "phase = 'Succeeded'" in cond, plan
    assert len(scans) >= 2  # and the partial index of rows without a copy, OR-ed


async def test_without_btree_gin_the_migration_warns_and_keeps_the_unscoped_index(
    postgres: PostgreSQL, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A user without CREATE on the database cannot create even a trusted extension: the
    migration says so in the operator's log, keeps the old GIN index, and the archive
    works (written and read)."""
    caplog.set_level(logging.WARNING, logger="asynctask.operator")
    role = f"limited_{uuid.uuid4().hex[:8]}"
    database = database_url.rsplit("/", 1)[1]
    postgres.psql(database, f"CREATE ROLE {role} LOGIN; GRANT CREATE ON SCHEMA public TO {role}")
    url = database_url.replace("://asynctask@", f"://{role}@", 1)
    try:
        async with await psycopg.AsyncConnection.connect(url) as conn:
            assert await migrate(conn) == [m.version for m in MIGRATIONS]
            assert await one(conn, "SELECT to_regclass(%s)", SCOPED) is None
            assert await one(conn, "SELECT to_regclass(%s)::text", UNSCOPED) == UNSCOPED
        assert any(SCOPED_INDEX_MISSING in r.getMessage() for r in caplog.records)
        archive = PostgresArchive(url)
        await archive.open()
        try:
            await archive.upsert([r for n in range(3) if (r := record_of(task(n)))])
        finally:
            await archive.close()
        async with await psycopg.AsyncConnection.connect(url) as conn:
            assert await partitions_indexed(conn, UNSCOPED) >= 1
        # Read by the bitmap plan (walks of one entry) on the unscoped index.
        reader = ArchiveReader(url, walk_entries=1)
        await reader.start()
        try:
            query = HistoryQuery.parse({"labelSelector": "app=a-1", "limit": "1"})
            objects, _ = await reader.page("ns", query)
        finally:
            await reader.close()
        assert [o["metadata"]["uid"] for o in objects] == ["u1"]
    finally:
        postgres.psql(database, f"DROP OWNED BY {role}; DROP ROLE {role}")
