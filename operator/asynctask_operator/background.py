"""Fire-and-forget asyncio tasks, kept in one way: referenced until done, failures logged.

The event loop holds only weak references to tasks, so a task nobody keeps can vanish
mid-flight; and an exception nobody retrieves is reported late, if at all. Every module
that starts work it does not await uses a :class:`Background`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger("asynctask.operator")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, work: Coroutine[Any, Any, None], name: str | None = None) -> None:
        task = asyncio.get_running_loop().create_task(work, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def join(self) -> None:
        """Wait for the tasks started so far (tests, and a clean shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def cancel(self) -> None:
        for task in self._tasks:
            task.cancel()

    async def stop(self) -> None:
        """Cancel the tasks and wait until they are done (a stop leaves none running)."""
        self.cancel()
        await self.join()
