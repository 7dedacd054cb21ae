"""The archive's PostgreSQL adapter: psycopg 3 with its async pool.

Why psycopg 3 rather than asyncpg: it is libpq underneath, so the database URL takes every
libpq option and environment variable (``sslmode=verify-full``, ``sslrootcert``, ``PGSSLMODE``,
service files), which is how the chart's TLS settings reach it unchanged; its pool
(psycopg_pool) is maintained with it and checks and replaces broken connections; it ships
type hints (mypy strict without stubs); and ``executemany`` runs in pipeline mode, one round
trip for a batch. asyncpg is faster per row in micro-benchmarks, but it reimplements the
protocol (TLS and URL options of its own) and needs third-party stubs; the archive writes in
batches off the status path, so per-row speed is not what bounds it.

Only the operator writes here; the gateway reads with its own pool and credentials.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from psycopg import AsyncConnection, errors
from psycopg_pool import AsyncConnectionPool

from asynctask_operator.archive.migrate import migrate
from asynctask_operator.archive.record import COLUMNS, PAYLOADS, ArchiveRecord
from asynctask_operator.archive.schema import (
    LOCK_KEY,
    TABLE,
    day_of,
    days_ahead,
    expired,
    partition_ddl,
)

log = logging.getLogger("asynctask.operator")

_JSONB = {"labels", *PAYLOADS}
_VALUES = ", ".join(f"%({c})s::jsonb" if c in _JSONB else f"%({c})s" for c in COLUMNS)
_UPDATES = ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c not in ("uid", "finished_at"))
UPSERT = (
    f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}) VALUES ({_VALUES}) "
    f"ON CONFLICT (uid, finished_at) DO UPDATE SET {_UPDATES}, archived_at = now()"
)
#: How many days of partitions exist ahead of today.
DAYS_AHEAD = 2


class PostgresArchive:
    """The history table: migrated on :meth:`open`, written in batches, pruned by day."""

    def __init__(self, url: str, *, pool_size: int = 4, connect_timeout: float = 10) -> None:
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            timeout=connect_timeout,
            kwargs={"connect_timeout": max(1, int(connect_timeout))},
            check=AsyncConnectionPool.check_connection,  # a server restart breaks them all
            name="asynctask-archive",
        )
        self._partitions: set[date] = set()
        self._migrated = False

    async def open(self) -> None:
        """Open the pool, waiting for a first connection, and migrate (tests, tools)."""
        await self._pool.open(wait=True)
        await self._migrate()

    async def start(self) -> None:
        """Open the pool without waiting for PostgreSQL (the operator's way): the first
        write or maintenance that reaches it migrates."""
        await self._pool.open(wait=False)

    async def _migrate(self) -> None:
        if not self._migrated:
            async with self._pool.connection() as conn:
                await migrate(conn)
            self._migrated = True

    async def close(self) -> None:
        await self._pool.close()

    async def upsert(self, records: Sequence[ArchiveRecord]) -> None:
        """Write rows in one transaction, each upserted by (uid, finished_at): writing a
        row twice (at-least-once) leaves one row, its newest state."""
        if not records:
            return
        await self._migrate()
        days = {day_of(r.finished_at) for r in records}
        await self.ensure_partitions(days)
        try:
            await self._write(records)
        except errors.CheckViolation:
            # "no partition found for row": a partition this process made was dropped
            # meanwhile (retention elsewhere, a restored database). Make it again, once.
            self._partitions -= days
            await self.ensure_partitions(days)
            await self._write(records)

    async def _write(self, records: Sequence[ArchiveRecord]) -> None:
        async with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(UPSERT, [r.row() for r in records])

    async def archived_uids(self, uids: Sequence[str]) -> set[str]:
        """Which of these uids have a row (``ports.ArchiveIndex``: the payload sweep)."""
        if not uids:
            return set()
        await self._migrate()
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                f"SELECT DISTINCT uid FROM {TABLE} WHERE uid = ANY(%s)", (list(uids),)
            )
            return {str(row[0]) for row in await cur.fetchall()}

    async def ensure_partitions(self, days: set[date]) -> None:
        """Create the partitions of these days that this process has not seen yet."""
        missing = sorted(days - self._partitions)
        if not missing:
            return
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            for day in missing:
                await conn.execute(partition_ddl(day))
        self._partitions.update(missing)

    async def maintain(self, retention_days: int, now: datetime | None = None) -> list[str]:
        """Make the coming days' partitions, and drop those past retention (0: keep all);
        the partitions dropped."""
        await self._migrate()
        today = day_of(now or datetime.now(UTC))
        await self.ensure_partitions(set(days_ahead(today, DAYS_AHEAD)))
        if retention_days <= 0:
            return []
        async with self._pool.connection() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            cur = await conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "WHERE i.inhparent = %s::regclass",
                (TABLE,),
            )
            names = [str(row[0]) for row in await cur.fetchall()]
            dropped = expired(names, today, retention_days)
            for name in dropped:
                await conn.execute(f"DROP TABLE IF EXISTS {name}")
        for name in dropped:
            log.info("archive: dropped %s (older than %d days)", name, retention_days)
        self._partitions = {d for d in self._partitions if d >= today}
        return dropped
