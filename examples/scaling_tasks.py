"""A worker app for trying the autoscaler (docs/autoscaling.md).

One handler, ``work``, that sleeps ``request.seconds`` (default 0.2) and returns how long it
slept. It serves the queues named in ``$SCALING_QUEUES`` (comma-separated, default
``scale-demo``), so a test or a demo can pick a queue that nothing else serves::

    SCALING_QUEUES=scale-demo asynctask-worker scaling_tasks:app --concurrency 4
"""

from __future__ import annotations

import os

from pydantic import BaseModel, Field

from asynctask_worker import App, TaskContext

app = App("scaling")


class WorkRequest(BaseModel):
    seconds: float = Field(0.2, ge=0, le=3600)


def work(request: WorkRequest, ctx: TaskContext) -> dict[str, float]:
    """Sleep, checking for cancellation; return how long it slept."""
    if ctx.wait_cancelled(request.seconds):
        ctx.raise_if_cancelled()
    return {"slept": request.seconds}


for _queue in os.environ.get("SCALING_QUEUES", "scale-demo").split(","):
    if _queue.strip():
        app.task(_queue.strip(), work)
