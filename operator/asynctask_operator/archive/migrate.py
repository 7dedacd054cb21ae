"""Applies :data:`schema.MIGRATIONS` once, whichever operator replica starts first.

The runner holds a session-level advisory lock for its whole run, so replicas starting
together apply each migration once: the others wait on the lock, then find it recorded in
``asynctask_schema_migrations``. Each migration and its record commit in one transaction
(PostgreSQL's DDL is transactional), so a crash leaves it wholly applied or not at all.

Why not a migration tool (Alembic, yoyo, Flyway): the archive has a handful of plain SQL
migrations and one table; Alembic would bring SQLAlchemy to the operator image for them,
and none of them takes the cross-replica lock by itself. This is forty lines, tested
against the real server.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import AsyncConnection

from asynctask_operator.archive.schema import LOCK_KEY, MIGRATIONS, Migration

log = logging.getLogger("asynctask.operator")

LEDGER = "asynctask_schema_migrations"


async def migrate(
    conn: AsyncConnection[Any], migrations: tuple[Migration, ...] = MIGRATIONS
) -> list[int]:
    """Apply the migrations ``conn``'s database lacks, in order; the versions applied."""
    await conn.set_autocommit(True)
    await conn.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
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
                await conn.execute(migration.sql)
                await conn.execute(
                    f"INSERT INTO {LEDGER} (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            log.info("archive: applied migration %d (%s)", migration.version, migration.name)
            applied.append(migration.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
