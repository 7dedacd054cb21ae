"""The task table: what the operator knows of each task it tracks, and each task's lock.

One :class:`TaskState` per AsyncTask (by uid): the latest status written or seen, the
spec parsed once, and the bookkeeping that makes duplicate and late messages harmless.
Every change of a task's status happens under its lock, so writes of one task never race.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from asynctask_operator import status as st
from asynctask_operator.kube import Gone
from asynctask_operator.ports import TaskApi
from asynctask_operator.spec import AsyncTaskSpec
from asynctask_operator.webhooks import WebhookOutcome
from asynctask_worker.messages import StatusMessage, TaskRef


@dataclass
class TaskState:
    ref: TaskRef
    generation: int | None
    status: dict[str, Any]
    spec: AsyncTaskSpec | None = None
    spec_error: str = ""  # why the spec is invalid (spec is None then)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    submitted: bool = False  # the first attempt's message was published
    cancel_sent: bool = False
    last_write: float = 0.0  # time.monotonic() of the latest status write
    coalesced_progress: StatusMessage | None = None  # progress waiting for its turn
    flush: asyncio.TimerHandle | None = None  # when coalesced_progress is written
    seq: dict[int, int] = field(default_factory=dict)  # attempt -> newest seq applied
    stopped: set[int] = field(default_factory=set)  # attempts told to stop (duplicates)
    webhook_outcome: WebhookOutcome | None = None  # not yet in the status


def parse_spec(raw: Any) -> tuple[AsyncTaskSpec | None, str]:
    """The spec, or None and what is wrong with it (field by field)."""
    try:
        return AsyncTaskSpec.model_validate(raw or {}), ""
    except ValidationError as exc:
        return None, "; ".join(
            f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )


#: What a finished task's status keeps in memory of its result and error: nothing of the
#: result (up to 64 KiB; the object has it), the error's reason and message (no traceback).
_DROPPED = ("result",)


def compact(task: TaskState) -> None:
    """Drop from memory what a finished task no longer needs: its result, its error's
    traceback and its request. The operator keeps what it must know of each task (phase,
    timestamps for deadlines, spec), so 100k finished tasks cost little more than 100k
    pending ones. A task with a webhook keeps its status whole: its terminal event's outcome
    is written after the event (the whole status again, result included)."""
    phase = st.phase_of(task.status)
    if phase is None or not phase.terminal:
        return
    if task.spec is not None and task.spec.request is not None:
        task.spec = task.spec.model_copy(update={"request": None})
    if task.spec is not None and task.spec.webhook is not None:
        return
    error = task.status.get("error")
    if any(key in task.status for key in _DROPPED) or (
        isinstance(error, dict) and "traceback" in error
    ):
        kept = {k: v for k, v in task.status.items() if k not in _DROPPED}
        if isinstance(error, dict):
            kept["error"] = {k: v for k, v in error.items() if k != "traceback"}
        task.status = kept


class TaskTable:
    def __init__(self, api: TaskApi) -> None:
        self._api = api
        self._tasks: dict[str, TaskState] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def get(self, uid: str) -> TaskState | None:
        return self._tasks.get(uid)

    def holds(self, task: TaskState) -> bool:
        """Is ``task`` still the one tracked under its uid (not forgotten meanwhile)?"""
        return self._tasks.get(task.ref.uid) is task

    def pop(self, uid: str) -> TaskState | None:
        return self._tasks.pop(uid, None)

    def remember(self, body: dict[str, Any]) -> TaskState:
        """The task an object describes, created or updated from it."""
        meta = body["metadata"]
        uid = meta["uid"]
        seen = dict(body.get("status") or {})
        task = self._tasks.get(uid)
        if task is None:
            task = self._tasks[uid] = TaskState(
                TaskRef(uid=uid, namespace=meta["namespace"], name=meta["name"]),
                meta.get("generation"),
                seen,
            )
        elif st.order(seen) > st.order(task.status):
            task.status = seen  # e.g. written by a previous operator instance
        task.generation = meta.get("generation", task.generation)
        task.spec, task.spec_error = parse_spec(body.get("spec"))
        compact(task)
        return task

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
