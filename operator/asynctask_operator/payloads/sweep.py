"""The sweep: orphaned objects under the prefix deleted by the leader, every
``ASYNCTASK_S3_SWEEP_SECONDS``.

A task's objects normally go with it (:meth:`PayloadObjects.deleted`, on the watch's
DELETED event). What that misses (a delete while the store was down, an operator that
was away, a worker killed mid-upload whose task was deleted, an upload whose task was
never created) is swept once older than ``ASYNCTASK_S3_GRACE_SECONDS``: a result whose
task uid is gone (and, with the history archive, whose uid no archived row holds: the
archive's retention decides those), an upload no live task's ``spec.requestRef`` names.
It runs only after the watch listed every task (else every object would look orphaned),
and only in the operator that acts: the elected leader.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.payloads.checks import parse_key, sweep_verdict
from asynctask_operator.payloads.settings import PayloadConfig
from asynctask_operator.ports import ArchiveIndex, PayloadStore, StoredObject
from asynctask_operator.tasks import TaskState

log = logging.getLogger("asynctask.operator")


class Sweeper:
    def __init__(
        self,
        config: PayloadConfig,
        store: PayloadStore,
        tasks: Callable[[], Iterable[TaskState]],
        metrics: OperatorMetrics,
        *,
        serves: Callable[[str], bool] = lambda namespace: True,
        archive: ArchiveIndex | None = None,
    ) -> None:
        assert config.bucket is not None
        self.config = config
        self.bucket = config.bucket
        self.store = store
        self.tasks = tasks
        self.metrics = metrics
        self.serves = serves
        self.archive = archive

    async def run(self) -> None:
        """Sweep now, then every ``sweep_seconds``, until cancelled (a failed sweep is
        logged and tried at the next one)."""
        while True:
            try:
                swept = await self.sweep()
                if swept:
                    log.info("payload sweep: deleted %d orphaned object(s)", swept)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the next sweep tries again
                self.metrics.payload_store_errors.inc()
                log.warning(
                    "payload sweep failed (tried again in %.0fs): %s",
                    self.config.sweep_seconds,
                    exc,
                )
            await asyncio.sleep(self.config.sweep_seconds)

    async def sweep(self, now: float | None = None) -> int:
        """One pass over the prefix, page by page; how many objects it deleted."""
        after: str | None = None
        deleted = 0
        live: tuple[set[str], set[str]] | None = None
        while True:
            page, more = await self.store.list_page(self.bucket, self.config.prefix, after)
            # What lives is read once, after the first page was listed: objects written
            # after that are younger than the grace (the sweep takes far less than it).
            live = live or self._live()
            deleted += await self._sweep_page(page, time.time() if now is None else now, *live)
            if not more or not page:
                return deleted
            after = page[-1].key

    async def _sweep_page(
        self, page: list[StoredObject], now: float, live_uids: set[str], live_uploads: set[str]
    ) -> int:
        doomed: list[tuple[str, str]] = []  # (key, kind)
        results: dict[str, str] = {}  # uid -> key, for the archive's word
        for obj in page:
            owner = parse_key(self.config.prefix, obj.key)
            verdict = sweep_verdict(
                owner,
                obj.key,
                now - obj.modified,
                self.config.grace_seconds,
                serves=owner is not None and self.serves(owner.namespace),
                live_uids=live_uids,
                live_uploads=live_uploads,
            )
            if verdict == "delete":
                doomed.append((obj.key, "request"))
            elif verdict == "ask-archive" and owner is not None:
                results[owner.name] = obj.key
        doomed += [(key, "result") for key in await self._unarchived(results)]
        for key, kind in doomed:
            await self.store.delete(self.bucket, key)
            self.metrics.payload_swept.labels(kind).inc()
            log.info("payload sweep: deleted orphaned %s s3://%s/%s", kind, self.bucket, key)
        return len(doomed)

    def _live(self) -> tuple[set[str], set[str]]:
        uids: set[str] = set()
        uploads: set[str] = set()
        for task in self.tasks():
            uids.add(task.uid)
            ref = task.spec.request_ref if task.spec is not None else None
            if ref is not None and ref.bucket == self.bucket:
                uploads.add(ref.key)
        return uids, uploads

    async def _unarchived(self, results: dict[str, str]) -> list[str]:
        """The keys of results whose uid no archived row holds (all of them without an
        archive; none while the archive cannot say: they wait for the next sweep)."""
        if not results or self.archive is None:
            return list(results.values())
        try:
            archived = await self.archive.archived_uids(sorted(results))
        except Exception as exc:  # noqa: BLE001 - those results wait for the next sweep
            log.warning("payload sweep: the archive cannot say which results it keeps: %s", exc)
            return []
        return [key for uid, key in results.items() if uid not in archived]
