"""What the operator that acts (the elected leader) runs for large payloads: the store
opened when configured, the deleters of deleted tasks' objects, and the sweep.

The sweep starts only once every task was listed and its events handled: before that,
every object would look orphaned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.payloads.objects import DELETERS, PayloadObjects
from asynctask_operator.payloads.settings import PayloadConfig
from asynctask_operator.payloads.sweep import Sweeper
from asynctask_operator.ports import ArchiveIndex, PayloadStore
from asynctask_operator.tasks import TaskState


def open_store(config: PayloadConfig) -> PayloadStore | None:
    """The object store when ``ASYNCTASK_S3_ENDPOINT`` is set (boto3 is imported only
    then), else None."""
    if not config.enabled:
        return None
    from asynctask_operator.payloads.store import S3Store

    return S3Store(config)


class PayloadWork:
    def __init__(self, payloads: PayloadObjects, sweeper: Sweeper) -> None:
        self.payloads = payloads
        self.sweeper = sweeper

    @classmethod
    def compose(
        cls,
        payloads: PayloadObjects,
        tasks: Callable[[], Iterable[TaskState]],
        metrics: OperatorMetrics,
        *,
        serves: Callable[[str], bool],
        archive: ArchiveIndex | None,
    ) -> PayloadWork | None:
        """The work over ``payloads``' store (None when storage is off): its deleters, and a
        sweep of the namespaces it ``serves`` that keeps the results ``archive`` indexes."""
        if payloads.store is None:
            return None
        sweeper = Sweeper(
            payloads.config, payloads.store, tasks, metrics, serves=serves, archive=archive
        )
        return cls(payloads, sweeper)

    def start(self, tasks_handled: Callable[[], Awaitable[None]]) -> list[asyncio.Task[None]]:
        """The loops, started (the caller cancels them on stop)."""

        async def sweep() -> None:
            await tasks_handled()
            await self.sweeper.run()

        return [
            asyncio.create_task(sweep(), name="asynctask-payload-sweep"),
            *(
                asyncio.create_task(self.payloads.deleting(), name=f"asynctask-payload-delete-{i}")
                for i in range(DELETERS)
            ),
        ]
