"""How long the record of a new task's publish (its Pending) waits for the task's end.

:meth:`writer.StatusWriter.hold_record` keeps that record in memory for
``publish_fold_seconds`` (1 s): a task that ends sooner costs one status write, its end
carrying the record. In a burst, though, the queue drains at the pace of the whole machine
and most tasks end several seconds after their publish; writing each record at 1 s then
costs a second write for most tasks, in the very moment the apiserver is the bottleneck.

So when a record's window ends while the writer is busy (:data:`BUSY_WRITES` or more of its
status writes waiting for the apiserver), the record waits one more window, and again,
until ``publish_fold_max_seconds`` after the publish; then it is written whatever the load.
With fewer writes in flight (an idle or lightly loaded system) a record is written at the
end of its first window, exactly as before. The safety argument is the fixed window's: an
operator killed while a record is held publishes the task again when it restarts (the same
message id: at-least-once, deduplicated where a worker can), a graceful stop writes every
held record, and any other write of the task (Processing, progress, a cancel, a timeout)
writes or carries the record first. The cap bounds how many tasks a crash publishes again:
those published within its last ``publish_fold_max_seconds`` and not ended.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Status writes in flight (sent, or waiting for a connection of the API client's pool) from
#: which the writer counts as busy: a quarter of the pool's 64 connections. On the 2-core
#: test machine, whenever a record's window ended in a 1,000-task burst the writer had
#: 68-327 writes in flight with the fixed 1 s window and 44-86 with this hold (most of them
#: the tasks' ends); at 100 tasks/s on the machine loaded by other work, the apiserver
#: falling behind, 33-87. A system that keeps up is rarely asked (its tasks end within
#: their first window): at 100 tasks/s on a quiet machine, 1.00 writes a task and a flat
#: backlog, as with the fixed window.
BUSY_WRITES = 16

#: Shorter than this is not worth another timer: the record is written.
MIN_EXTENSION = 0.05


@dataclass(frozen=True, slots=True)
class RecordHold:
    """When a held record is written: ``window`` after the publish, or later, in steps of
    ``window`` while the writer is busy, but never more than ``cap`` after the publish."""

    window: float
    cap: float
    busy_writes: int = BUSY_WRITES

    def extension(self, held_for: float, writes_in_flight: int) -> float:
        """Seconds more to hold a record held ``held_for`` seconds so far, its window
        over, while the writer has ``writes_in_flight``; 0: write it now."""
        if writes_in_flight < self.busy_writes:
            return 0.0
        more = min(self.window, self.cap - held_for)
        return more if more >= MIN_EXTENSION else 0.0
