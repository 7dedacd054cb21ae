"""Where the operator keeps track of tasks and writes their status.

One :class:`Tracker` serialises every status write of a task (a lock per task), knows the
latest status it wrote or saw, and coalesces progress: phase changes are written at once,
progress at most once per ``progress_patch_interval_seconds`` per task. A task costs one
write when it is queued (Pending), one when a worker starts it (Processing) and one when it
ends, plus at most one per second of progress in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from asynctask_operator import status as st
from asynctask_operator.broker import Broker, Delivery
from asynctask_operator.kube import Gone, Kube
from asynctask_operator.settings import OperatorSettings
from asynctask_operator.spec import AsyncTaskSpec
from asynctask_worker.messages import (
    MalformedMessage,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    task_message_id,
    utcnow,
)

log = logging.getLogger("asynctask.operator")


@dataclass
class _Task:
    ref: TaskRef
    generation: int | None
    status: dict[str, Any]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    submitted: bool = False
    last_write: float = 0.0
    pending: StatusMessage | None = None  # progress waiting for its turn
    flush: asyncio.TimerHandle | None = None
    seq: dict[int, int] = field(default_factory=dict)  # attempt -> newest seq applied


class Tracker:
    def __init__(self, settings: OperatorSettings, kube: Kube, broker: Broker) -> None:
        self.settings = settings
        self.kube = kube
        self.broker = broker
        self.tasks: dict[str, _Task] = {}
        self.writes = 0  # status PATCHes sent (for logs and tests)

    # watch events (from kopf) ----------------------------------------------------------

    async def observe(self, body: dict[str, Any]) -> None:
        """An object as the watch saw it: remember its status; queue it if it is new."""
        meta = body.get("metadata") or {}
        task = self._remember(body)
        if st.phase_of(task.status) is not None or task.submitted:
            return
        async with task.lock:
            if st.phase_of(task.status) is not None or task.submitted:
                return
            await self._submit(task, body.get("spec") or {})
        log.debug("observed %s/%s", meta.get("namespace"), meta.get("name"))

    def forget(self, uid: str) -> None:
        task = self.tasks.pop(uid, None)
        if task is not None and task.flush is not None:
            task.flush.cancel()

    def _remember(self, body: dict[str, Any]) -> _Task:
        meta = body["metadata"]
        uid = meta["uid"]
        seen = dict(body.get("status") or {})
        task = self.tasks.get(uid)
        if task is None:
            task = self.tasks[uid] = _Task(
                TaskRef(uid=uid, namespace=meta["namespace"], name=meta["name"]),
                meta.get("generation"), seen)
        elif _newer(seen, task.status):
            task.status = seen  # e.g. written by a previous operator instance
        task.generation = meta.get("generation", task.generation)
        return task

    async def _submit(self, task: _Task, raw_spec: dict[str, Any]) -> None:
        now = utcnow()
        try:
            spec = AsyncTaskSpec.model_validate(raw_spec)
        except ValidationError as exc:
            msg = "; ".join(f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                            for e in exc.errors())
            await self._write(task, st.error(task.status, "InvalidSpec", msg, now,
                                             task.generation))
            return
        message = TaskMessage(task=task.ref, queue=spec.queue, request=spec.request,
                              timeout_seconds=spec.timeout_seconds, attempt=1)
        # Publish first, then record: a crash in between re-publishes the same message id
        # on restart (at-least-once); the reverse order could lose the task.
        await self.broker.publish_task(message)
        task.submitted = True
        log.info("queued %s/%s on %s", task.ref.namespace, task.ref.name, spec.queue)
        await self._write(task, st.pending(task.status, task_message_id(task.ref.uid, 1), now,
                                           task.generation))

    # worker status messages ---------------------------------------------------------

    async def consume(self, inbox: asyncio.Queue[Delivery]) -> None:
        while True:
            delivery = await inbox.get()
            try:
                await self.ingest(delivery)
            except Exception:
                log.exception("failed to process status message %s; it will be redelivered",
                              delivery.message_id)

    async def ingest(self, delivery: Delivery) -> None:
        try:
            msg = decode(StatusMessage, delivery.body)
        except MalformedMessage as exc:
            log.error("dead-lettering status message %s: %s", delivery.message_id, exc)
            self.broker.reject(delivery)
            return
        task = self.tasks.get(msg.task.uid)
        if task is None:
            try:
                body = await self.kube.get(msg.task.namespace, msg.task.name)
            except Gone:
                body = None
            if body is None or body["metadata"]["uid"] != msg.task.uid:
                log.info("status for %s/%s, which no longer exists: dropped",
                         msg.task.namespace, msg.task.name)
                self.broker.ack(delivery)
                return
            task = self._remember(body)
        async with task.lock:
            change = st.classify(task.status, msg, task.seq.get(msg.attempt))
            if change is not st.Change.IGNORE:
                task.seq[msg.attempt] = msg.seq
            since = time.monotonic() - task.last_write
            interval = self.settings.progress_patch_interval_seconds
            if change is st.Change.PROGRESS and since < interval:
                # Coalesced: the newest progress is written when the interval is over.
                # Progress is lossy by nature, so the message is acked now; a crash loses
                # at most one tick, never a phase change.
                task.pending = msg
                if task.flush is None:
                    loop = asyncio.get_running_loop()
                    task.flush = loop.call_later(interval - since, self._schedule_flush, task)
            elif change is not st.Change.IGNORE:
                await self._write(task, st.apply(task.status, msg, utcnow(), task.generation))
        # Acked after the write: if the write failed (exception), the message is redelivered.
        self.broker.ack(delivery)

    def _schedule_flush(self, task: _Task) -> None:
        task.flush = None
        asyncio.get_running_loop().create_task(self._flush(task))

    async def _flush(self, task: _Task) -> None:
        async with task.lock:
            msg, task.pending = task.pending, None
            if msg is not None and st.classify(task.status, msg) is not st.Change.IGNORE:
                await self._write(task, st.apply(task.status, msg, utcnow(), task.generation))

    async def _write(self, task: _Task, status: dict[str, Any]) -> None:
        """Write the whole ``status`` in one PATCH; the caller holds the task's lock."""
        try:
            await self.kube.replace_status(task.ref.namespace, task.ref.name, task.ref.uid,
                                           status)
        except Gone:
            log.info("%s/%s is gone; forgetting it", task.ref.namespace, task.ref.name)
            self.forget(task.ref.uid)
            return
        self.writes += 1
        task.status = status
        task.last_write = time.monotonic()
        phase = st.phase_of(status)
        if phase is not None and phase.terminal:
            task.pending = None  # the terminal write has the final word
            if task.flush is not None:
                task.flush.cancel()
                task.flush = None


def _newer(seen: dict[str, Any], known: dict[str, Any]) -> bool:
    """Is the watched status ahead of what this process knows (e.g. after a restart)?"""
    return st.order(seen) > st.order(known)
