"""What a standby does with the AsyncTask events it is given: keeps the latest of each.

kopf watches AsyncTasks in every replica, the standby ones included (its peering no longer
pauses anything: :mod:`leadership` decides who works). A standby must not act on a task,
but the leader it replaces may have died with tasks it never queued, or deadlines only it
kept, and kopf hands an unchanged object over only once. So, until the operator starts,
:class:`Gate` keeps each task's latest object (a deleted task is forgotten), and once it
starts it hands them all over, as kopf's first listing would have, before any new event
goes through. A replica without ``--peering`` has no gate.

A standby thus holds what the leader holds, and more (whole objects: a request is kept as
the watch gave it, a result too); the operator's own list and watch, started only once
elected, will make this unnecessary.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger("asynctask.operator.standby")

#: ``Operator.task_event``: a watch event's type (None for kopf's listing) and its object.
Handle = Callable[[str | None, dict[str, Any]], Awaitable[None]]


class Gate:
    def __init__(self) -> None:
        self._handle: Handle | None = None
        self._held: dict[str, dict[str, Any]] = {}
        self._handing_over = False
        self._task: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """The operator has started (it may still be taking over what was kept)."""
        return self._handle is not None

    @property
    def open(self) -> bool:
        return self._handle is not None and not self._handing_over

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, event_type: str | None, body: dict[str, Any]) -> bool:
        """Keep the event if the operator has not started (True: the caller is done)."""
        if self.open:
            return False
        meta = body["metadata"]
        uid = str(meta["uid"])
        if event_type == "DELETED":
            self._held.pop(uid, None)
        elif "managedFields" in meta:  # never read, and often the larger part of metadata
            self._held[uid] = {
                **body,
                "metadata": {k: v for k, v in meta.items() if k != "managedFields"},
            }
        else:
            self._held[uid] = body
        return True

    def start(self, handle: Handle) -> None:
        """The operator has started: hand it what was kept (in a task), then open."""
        self._handle, self._handing_over = handle, True
        self._task = asyncio.create_task(self._hand_over(handle), name="asynctask-take-over")

    async def close(self) -> None:
        """Stop handing over (the operator is stopping)."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _hand_over(self, handle: Handle) -> None:
        """Hand the kept objects to ``handle`` (events that arrive meanwhile are kept and
        handed over in turn, so no object is handed an older version after a newer one),
        then let every later event through."""
        count = 0
        while self._held:
            uid = next(iter(self._held))
            body = self._held.pop(uid)
            await handle(None, body)
            count += 1
        self._handing_over = False  # with nothing held, and no await since the check
        log.info("took over %d tasks seen while standing by", count)
