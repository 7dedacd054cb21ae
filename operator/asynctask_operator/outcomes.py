"""Webhook outcomes into the task's status: whether each task's CloudEvents were delivered.

The dispatcher (:mod:`webhooks.dispatcher`) reports each event it delivered or gave up on.
The outcome rides along with the task's next status write (:class:`writer.StatusWriter`
adds it). Once the event of a terminal phase is settled there is no next write, so it gets
one of its own: a task with a webhook costs one status write more than one without.
"""

from __future__ import annotations

import asyncio

from asynctask_operator import status as st
from asynctask_operator.background import Background
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.observers import WebhookOutcome
from asynctask_operator.tasks import TaskState, TaskTable
from asynctask_operator.writer import StatusWriter
from asynctask_worker.messages import TaskRef


class WebhookOutcomes:
    def __init__(self, table: TaskTable, writer: StatusWriter, metrics: OperatorMetrics) -> None:
        self.table = table
        self.writer = writer
        self.metrics = metrics
        self._writes = Background()

    async def consume(self, outcomes: asyncio.Queue[tuple[TaskRef, WebhookOutcome]]) -> None:
        """Take the webhook dispatcher's outcomes, in order, until cancelled."""
        while True:
            ref, outcome = await outcomes.get()
            self.record(ref, outcome)

    def record(self, ref: TaskRef, outcome: WebhookOutcome) -> None:
        """An event was delivered or given up: keep it for the task's next write, or write
        it now if the event was the terminal phase's."""
        task = self.table.get(ref.uid)
        if task is None:
            return
        task.webhook_outcome = outcome
        self.metrics.webhooks.labels("delivered" if outcome["delivered"] else "failed").inc()
        phase = st.phase_of(task.status)
        if (
            phase is not None
            and phase.terminal
            and outcome["lastEventId"].endswith("." + phase.value.lower())
        ):
            self._writes.spawn(self._write(task), name=f"webhook-outcome-{ref.uid}")

    async def _write(self, task: TaskState) -> None:
        async with task.lock:
            if (
                task.webhook_outcome is not None
                and self.table.holds(task)
                and task.webhook_outcome != task.status.get("webhook")
            ):
                await self.writer.write(task, dict(task.status))
