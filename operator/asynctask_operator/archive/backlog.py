"""What waits to be archived, bounded in memory (pure: the archiver's bookkeeping).

Each terminal task is queued once, by uid, as its row (:func:`record.record_of`). Rows wait
in arrival order until a batch containing them is written. Memory is bounded by the rows'
size, not their count (a row carries its request and result): past ``max_bytes``, a task is
remembered by uid, namespace and name only (``overflow``, ~100 bytes each) and its object is
read again from the apiserver when the backlog has room (a read, never a write). Archived
uids are remembered while their object lives, so later events of the same task do not queue
it again; its deletion forgets it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from asynctask_operator.archive.record import ArchiveRecord, record_of


def size(record: ArchiveRecord) -> int:
    """About how many bytes a row holds in memory: its text, plus a fixed overhead."""
    text = (getattr(record, f.name) for f in fields(record))
    return 512 + sum(len(value) for value in text if isinstance(value, str))


class Backlog:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._pending: dict[str, ArchiveRecord] = {}
        self._overflow: dict[str, tuple[str, str]] = {}
        self._archived: set[str] = set()
        self._gone: set[str] = set()  # queued, and their object was deleted meanwhile

    def __len__(self) -> int:
        """Tasks waiting to be archived (rows in memory and those over the bound)."""
        return len(self._pending) + len(self._overflow)

    @property
    def rows(self) -> int:
        return len(self._pending)

    def archived(self, uid: str) -> bool:
        return uid in self._archived

    def waiting(self, uid: str) -> bool:
        return uid in self._pending or uid in self._overflow

    def offer(self, kind: str, body: dict[str, Any]) -> bool:
        """An object as the watch delivered it; True if it was queued now."""
        meta = body.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        deleted = kind == "DELETED"
        if not uid:
            return False
        if uid in self._archived:
            if deleted:
                self._archived.discard(uid)
            return False
        if self.waiting(uid):
            if deleted:
                self._gone.add(uid)
            return False
        record = record_of(body)
        if record is None:
            return False
        if deleted:
            self._gone.add(uid)
        self.add(record)
        return True

    def add(self, record: ArchiveRecord) -> None:
        """Queue a row, or only its name when it would take the backlog past its bound."""
        cost = size(record)
        if self._pending and self.bytes + cost > self.max_bytes:
            self._overflow[record.uid] = (record.namespace, record.name)
            return
        self._overflow.pop(record.uid, None)
        self._pending[record.uid] = record
        self.bytes += cost

    def batch(self, limit: int) -> list[ArchiveRecord]:
        """The oldest rows, up to ``limit``: they stay queued until :meth:`written`."""
        out: list[ArchiveRecord] = []
        for record in self._pending.values():
            if len(out) >= limit:
                break
            out.append(record)
        return out

    def written(self, records: list[ArchiveRecord]) -> None:
        """These rows are in the archive: forget them, remember their uids while live."""
        for record in records:
            if self._pending.pop(record.uid, None) is not None:
                self.bytes -= size(record)
            if record.uid in self._gone:
                self._gone.discard(record.uid)
            else:
                self._archived.add(record.uid)

    def refill_wanted(self) -> bool:
        """Names over the bound wait, and rows take less than half of it."""
        return bool(self._overflow) and self.bytes < self.max_bytes // 2

    def overflowed(self, limit: int) -> Iterator[tuple[str, str, str]]:
        """Up to ``limit`` of the tasks over the bound: (uid, namespace, name)."""
        for n, (uid, (namespace, name)) in enumerate(list(self._overflow.items())):
            if n >= limit:
                return
            yield uid, namespace, name

    def lost(self, uid: str) -> None:
        """A task over the bound whose object was deleted before it was read again."""
        self._overflow.pop(uid, None)
        self._gone.discard(uid)
