"""The task table: what the operator knows of each task it tracks, and each task's lock.

One :class:`TaskState` per AsyncTask (by uid): the latest status written or seen, the
spec parsed once, and the bookkeeping that makes duplicate and late messages harmless.
Every change of a task's status happens under its lock, so writes of one task never race.

The table is sized for 100k live tasks: a task holds what the operator must know (phase,
the times deadlines count from, the spec) in parts shared with other tasks (:mod:`sharing`),
and no result.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from asynctask_operator import status as st
from asynctask_operator.errors import Gone
from asynctask_operator.observers import WebhookOutcome
from asynctask_operator.ports import TaskApi
from asynctask_operator.sharing import Shared, pack_request
from asynctask_operator.spec import AsyncTaskSpec
from asynctask_worker.messages import StatusMessage, TaskRef


@dataclass(slots=True, eq=False)
class TaskState:
    """What the operator holds of one task. The spec is held without its request, which is
    kept apart as JSON (:attr:`request`) until the task finishes."""

    uid: str
    namespace: str
    name: str
    generation: int | None
    status: dict[str, Any]  # of shared parts: replaced, never changed in place
    spec: AsyncTaskSpec | None = None  # shared between tasks; its request is None
    spec_error: str = ""  # why the spec is invalid (spec is None then)
    request: str | None = None  # spec.request as compact JSON; None once finished
    request_depth: int = 0  # how deep spec.request nests
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    submitted: bool = False  # the first attempt's message was published
    cancel_sent: bool = False
    last_write: float = 0.0  # time.monotonic() of the latest status write
    coalesced_progress: StatusMessage | None = None  # progress waiting for its turn
    flush: asyncio.TimerHandle | None = None  # when coalesced_progress is written
    seqs: dict[int, int] | None = None  # attempt -> newest seq applied
    stopped: frozenset[int] = frozenset()  # attempts told to stop (duplicates)
    webhook_outcome: WebhookOutcome | None = None  # not yet in the status
    created: str = ""  # metadata.creationTimestamp (shared): a held task's place in line
    # A publish not yet recorded (see StatusWriter.hold_record): ``status`` is then the
    # Pending that records it, kept in memory only, and ``recorded`` the status last
    # written; the record is written by time.monotonic() ``record_at`` unless the task's
    # end comes first and carries it (one write). None: everything in status is written.
    recorded: dict[str, Any] | None = None
    record_at: float = 0.0

    @property
    def ref(self) -> TaskRef:
        """The task as messages name it (built when asked: kept, it would cost 0.5 KB)."""
        return TaskRef.model_construct(uid=self.uid, namespace=self.namespace, name=self.name)

    def request_value(self) -> Any:
        """spec.request, parsed (None when absent, and once the task finished)."""
        return None if self.request is None else json.loads(self.request)

    def last_seq(self, attempt: int) -> int | None:
        """The newest sequence number applied of an attempt's messages."""
        return None if self.seqs is None else self.seqs.get(attempt)

    def applied(self, attempt: int, seq: int) -> None:
        if self.seqs is None:
            self.seqs = {}
        self.seqs[attempt] = seq

    def stop_once(self, attempt: int) -> bool:
        """True the first time an attempt is to be told to stop, False after."""
        if attempt in self.stopped:
            return False
        self.stopped = self.stopped | {attempt}
        return True


#: What a finished task's status keeps in memory of its result and error: nothing of the
#: result (up to 64 KiB; the object has it) nor of its stored result's reference (its key
#: follows from the uid), the error's reason and message (no traceback).
_DROPPED = ("result", "resultRef")


def compact(task: TaskState, shared: Shared) -> None:
    """Keep in memory what the operator must know of a task, in shared parts.

    A finished task drops its request, its result and its error's traceback: the operator
    keeps phase, the times deadlines count from and the spec, so 100k finished tasks cost
    little more than 100k pending ones. A task with a webhook keeps its status whole: its
    terminal event's outcome is written after the event (the whole status again, result
    included)."""
    phase = st.phase_of(task.status)
    if phase is not None and phase.terminal:
        task.request = None
        if task.spec is None or task.spec.webhook is None:
            task.status = _without_payload(task.status)
    task.status = shared.status(task.status)


def _without_payload(status: dict[str, Any]) -> dict[str, Any]:
    error = status.get("error")
    traceback = isinstance(error, dict) and "traceback" in error
    if not traceback and not any(key in status for key in _DROPPED):
        return status
    kept = {k: v for k, v in status.items() if k not in _DROPPED}
    if isinstance(error, dict):
        kept["error"] = {k: v for k, v in error.items() if k != "traceback"}
    return kept


class TaskTable:
    def __init__(self, api: TaskApi) -> None:
        self._api = api
        self._tasks: dict[str, TaskState] = {}
        self.shared = Shared()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[TaskState]:
        return iter(self._tasks.values())

    def get(self, uid: str) -> TaskState | None:
        return self._tasks.get(uid)

    def holds(self, task: TaskState) -> bool:
        """Is ``task`` still the one tracked under its uid (not forgotten meanwhile)?"""
        return self._tasks.get(task.uid) is task

    def pop(self, uid: str) -> TaskState | None:
        return self._tasks.pop(uid, None)

    def remember(self, body: dict[str, Any]) -> TaskState:
        """The task an object describes, created or updated from it."""
        meta = body["metadata"]
        uid = meta["uid"]
        seen = dict(body.get("status") or {})
        task = self._tasks.get(uid)
        changed = task is None or st.order(seen) > st.order(task.status)
        if task is None:
            task = self._tasks[uid] = TaskState(
                uid, self.shared.text(meta["namespace"]), meta["name"], meta.get("generation"), seen
            )
        elif changed:
            task.status = seen  # e.g. written by a previous operator instance
            task.recorded = None  # what is seen is written
        task.generation = meta.get("generation", task.generation)
        task.created = self.shared.text(str(meta.get("creationTimestamp") or ""))
        raw_spec = body.get("spec")
        task.spec, task.spec_error = self.shared.spec(raw_spec)
        phase = st.phase_of(task.status)
        if phase is None or not phase.terminal:
            task.request, task.request_depth = pack_request(raw_spec)
        if changed:
            self.compact(task)
        return task

    def compact(self, task: TaskState) -> None:
        """Keep only what is needed of a task, in shared parts (see :func:`compact`)."""
        compact(task, self.shared)

    async def lookup(self, ref: TaskRef) -> TaskState | None:
        """The task a message is about: tracked, or read from the API (None: gone)."""
        task = self._tasks.get(ref.uid)
        if task is not None:
            return task
        try:
            body = await self._api.get(ref.namespace, ref.name)
        except Gone:
            return None
        if body["metadata"]["uid"] != ref.uid:
            return None
        return self.remember(body)
