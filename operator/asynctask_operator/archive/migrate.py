"""Applies :data:`schema.MIGRATIONS` once, whichever operator replica starts first.

The runner holds a session-level advisory lock for its whole run, so replicas starting
together apply each migration once: the others wait on the lock, then find it recorded in
``asynctask_schema_migrations``. Each migration and its record commit in one transaction
(PostgreSQL's DDL is transactional), so a crash leaves it wholly applied or not at all.
A migration with a backfill (``Migration.backfill``) updates every partition in batches of
pages, one transaction each (never one transaction over the whole table, which would hold
its locks and its new row versions to the end), then records itself.

Why not a migration tool (Alembic, yoyo, Flyway): the archive has a handful of plain SQL
migrations and one table; Alembic would bring SQLAlchemy to the operator image for them,
and none of them takes the cross-replica lock by itself. This is forty lines, tested
against the real server.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection
from psycopg.errors import Diagnostic

from asynctask_operator.archive.schema import (
    LOCK_KEY,
    MIGRATIONS,
    TABLE,
    Migration,
    block_ranges,
)

log = logging.getLogger("asynctask.operator")

LEDGER = "asynctask_schema_migrations"


async def migrate(
    conn: AsyncConnection[Any], migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[int]:
    """Apply the migrations ``conn``'s database lacks, in order; the versions applied."""
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
    # A migration's WARNING (migration 4 when btree_gin cannot be created) in the log.
    conn.add_notice_handler(_log_warning)
    try:
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {LEDGER} (version integer PRIMARY KEY, "
            "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        cur = await conn.execute(f"SELECT version FROM {LEDGER}")
        done = {int(row[0]) for row in await cur.fetchall()}
        applied = []
        for migration in sorted(migrations, key=lambda m: m.version):
            if migration.version in done:
                continue
            async with conn.transaction():
                if migration.sql:
                    await conn.execute(migration.sql)
                if not migration.backfill:
                    await _record(conn, migration)
            if migration.backfill:
                updated = await backfill(conn, migration.backfill)
                async with conn.transaction():
                    await _record(conn, migration)
                log.info("archive: migration %d backfilled %d rows", migration.version, updated)
            log.info("archive: applied migration %d (%s)", migration.version, migration.name)
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
        conn.remove_notice_handler(_log_warning)


def _log_warning(diag: Diagnostic) -> None:
    if diag.severity_nonlocalized == "WARNING":
        log.warning("archive: %s", diag.message_primary)


async def _record(conn: AsyncConnection[Any], migration: Migration) -> None:
    await conn.execute(
        f"INSERT INTO {LEDGER} (version, name) VALUES (%s, %s)",
        (migration.version, migration.name),
    )


async def backfill(conn: AsyncConnection[Any], statement: str, step: int | None = None) -> int:
    """Run ``statement`` (an UPDATE of ``{partition}`` between two ``ctid``) over every
    partition's pages as they are now, in batches (:func:`schema.block_ranges`), each its
    own transaction; the rows updated. The new row versions a batch writes may land in a
    later batch's pages: the statement's own condition (``labels_key IS NULL``) skips them."""
    cur = await conn.execute(
        "SELECT c.relname, pg_relation_size(c.oid) / current_setting('block_size')::int "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
        (TABLE,),
    )
    updated = 0
    for name, pages in await cur.fetchall():
        updated += await backfill_partition(conn, statement, str(name), int(pages), step)
    return updated


async def backfill_partition(
    conn: AsyncConnection[Any], statement: str, name: str, pages: int, step: int | None = None
) -> int:
    """One partition's backfill (:func:`backfill`), its first ``pages`` pages."""
    sql = statement.format(partition=name).encode()
    updated = 0
    for lo, hi in block_ranges(pages) if step is None else block_ranges(pages, step):
        async with conn.transaction():
            updated += max(0, (await conn.execute(sql, (lo, hi))).rowcount)
    return updated
