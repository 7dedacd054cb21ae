"""The archiver: every terminal task the watch delivers, written to the history archive.

:class:`Archiver` is handed each object the operator's watch delivers (the initial list after
a restart included, and a DELETED event's last state), queues the terminal ones once per uid
(:class:`archive.backlog.Backlog`, bounded in memory) and writes them in batches through
``ports.ArchiveStore``: up to ``batch_size`` rows, or what came within ``flush_seconds`` of
the first. It never blocks the status path: :meth:`offer` only queues; the writes run in
their own loop, and while PostgreSQL is away they are retried with a doubling backoff (up to
30 s) while tasks go on finishing.

TTL deletion asks :meth:`hold_deletion` first: an unarchived task's deletion waits, up to
``ttl_wait_seconds``; a deletion that goes ahead unarchived is counted. It costs no
apiserver write (a task over the memory bound is read again, a GET).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from asynctask_operator.archive.backlog import Backlog
from asynctask_operator.archive.record import ArchiveRecord, record_of
from asynctask_operator.errors import Gone
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.ports import ArchiveStore, TaskApi
from asynctask_operator.settings import ArchiveConfig
from asynctask_worker.backoff import Backoff, describe

log = logging.getLogger("asynctask.operator")

#: How often a held TTL deletion looks again, besides being woken when its task is archived.
RECHECK_SECONDS = 30.0
#: How many tasks over the memory bound are read again at once.
REFILL = 100


class Archiver:
    def __init__(
        self,
        config: ArchiveConfig,
        store: ArchiveStore,
        api: TaskApi,
        metrics: OperatorMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.store = store
        self.api = api
        self.metrics = metrics
        self.backlog = Backlog(config.max_pending_bytes)
        self._clock = clock
        self._holds: dict[str, float] = {}  # uid -> when its TTL deletion first waited
        self._wake = asyncio.Event()
        self._full = asyncio.Event()
        self._failing = False
        #: Told the uid of each held task once it is archived (the tracker's TTL timer).
        self.on_archived: Callable[[str], None] = lambda uid: None
        metrics.archive_depth.set_function(lambda: float(len(self.backlog)))

    # the watch's side: never waits -----------------------------------------------------

    def offer(self, kind: str, body: dict[str, Any]) -> None:
        if kind == "DELETED":
            self._holds.pop(str((body.get("metadata") or {}).get("uid") or ""), None)
        if self.backlog.offer(kind, body):
            self._wake.set()
            if self.backlog.rows >= self.config.batch_size:
                self._full.set()

    # the TTL's side --------------------------------------------------------------------

    def hold_deletion(self, uid: str) -> float | None:
        """Seconds the TTL deletion of ``uid`` should wait before asking again, or None:
        delete now (archived, or waited ``ttl_wait_seconds`` already: then it counts)."""
        if self.backlog.archived(uid):
            self._holds.pop(uid, None)
            return None
        now = self._clock()
        since = self._holds.setdefault(uid, now)
        left = since + self.config.ttl_wait_seconds - now
        if left > 0:
            return min(RECHECK_SECONDS, left)
        self._holds.pop(uid, None)
        self.metrics.archive_unarchived_deletions.inc()
        log.warning("TTL deletion of task %s goes ahead unarchived after %.0fs", uid, now - since)
        return None

    # the writer's loop -----------------------------------------------------------------

    async def run(self) -> None:
        """Write batches until cancelled."""
        backoff = Backoff(maximum=30.0, first=0.5)
        while True:
            if self.backlog.refill_wanted():
                await self._refill()
            if not self.backlog.rows:
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.backlog.rows < self.config.batch_size:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.config.flush_seconds)
            batch = self.backlog.batch(self.config.batch_size)
            if await self._write(batch):
                backoff.reset()
            else:
                await asyncio.sleep(backoff.next())

    async def _write(self, batch: list[ArchiveRecord]) -> bool:
        try:
            await self.store.upsert(batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure: the batch is written again
            self.metrics.archive_failures.inc()
            if not self._failing:
                log.warning(
                    "archive: writing %d rows failed (%s); retrying", len(batch), describe(exc)
                )
            self._failing = True
            return False
        if self._failing:
            log.info("archive: writing again (%d tasks waiting)", len(self.backlog))
        self._failing = False
        self.backlog.written(batch)
        now = datetime.now(UTC)
        self.metrics.archive_batches.inc()
        self.metrics.archive_rows.inc(len(batch))
        for record in batch:
            self.metrics.archive_lag.observe(max(0.0, (now - record.finished_at).total_seconds()))
            if record.uid in self._holds:
                self.on_archived(record.uid)
        return True

    async def _refill(self) -> None:
        """Read again the objects of tasks that were over the memory bound."""
        for uid, namespace, name in self.backlog.overflowed(REFILL):
            try:
                body = await self.api.get(namespace, name)
            except Gone:
                body = {}
            except Exception as exc:  # noqa: BLE001 - the next round reads it again
                log.warning(
                    "archive: reading %s/%s again failed: %s", namespace, name, describe(exc)
                )
                return
            record = record_of(body)
            if record is None or record.uid != uid:
                self.backlog.lost(uid)
                self.metrics.archive_lost.inc()
                log.warning("archive: %s/%s was deleted before it was archived", namespace, name)
            else:
                self.backlog.add(record)

    # retention -------------------------------------------------------------------------

    async def maintain(self) -> None:
        """Make the coming days' partitions and drop those past retention, at start and
        then every ``maintenance_interval_seconds``, until cancelled."""
        while True:
            try:
                dropped = await self.store.maintain(self.config.retention_days)
                self.metrics.archive_partitions_dropped.inc(len(dropped))
                delay = self.config.maintenance_interval_seconds
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - tried again soon
                log.warning("archive: maintenance failed (%s); trying again in 60s", describe(exc))
                delay = min(60.0, self.config.maintenance_interval_seconds)
            await asyncio.sleep(delay)
