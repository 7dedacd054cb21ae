"""Handlers for tests/e2e/test_worker.py, served by worker subprocesses of that module.

What a test must observe from outside (did the handler run, did it see the cancellation)
is written as marker files under $WORKER_E2E_MARKERS, named ``<namespace>.<name>.<what>``.
The test drives ``stepwise`` by creating gate files in the same folder.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from asynctask_worker import App, TaskContext, TaskFailed

app = App("worker-e2e")

#: The queue of ``never_runs``: each test that uses it picks a queue of its own.
NEVER_RUNS_QUEUE = os.environ.get("WORKER_E2E_NEVER_RUNS_QUEUE", "never-runs")


def marker(ctx: TaskContext, what: str) -> Path:
    return Path(os.environ["WORKER_E2E_MARKERS"]) / f"{ctx.namespace}.{ctx.name}.{what}"


def mark(ctx: TaskContext, what: str) -> None:
    marker(ctx, what).write_text(str(ctx.attempt))


class StepwiseRequest(BaseModel):
    steps: list[int] = Field(default=[10, 50, 90])
    min_seconds: float = 1.0  # at least this long between two reports
    gate_timeout: float = 120.0


@app.task("stepwise")
def stepwise(request: StepwiseRequest, ctx: TaskContext) -> dict[str, list[int]]:
    """Reports each of request.steps, then waits until the test created the gate file
    ``<namespace>.<name>.seen-<percent>`` (it saw that value in ``kubectl get``)."""
    mark(ctx, "started")
    for percent in request.steps:
        ctx.progress(percent, f"reached {percent}%")
        reported = time.monotonic()
        gate = marker(ctx, f"seen-{percent}")
        deadline = reported + request.gate_timeout
        while not gate.exists() or time.monotonic() - reported < request.min_seconds:
            if time.monotonic() > deadline:
                raise TaskFailed(
                    f"nobody saw {percent}% within {request.gate_timeout}s", reason="GateTimeout"
                )
            if ctx.wait_cancelled(0.1):
                ctx.raise_if_cancelled()
    return {"reported": request.steps}


@app.task(NEVER_RUNS_QUEUE)
def never_runs(request: Any, ctx: TaskContext) -> str:
    """Must never be called: its tasks are cancelled while Pending. Marks that it ran."""
    mark(ctx, "ran")
    return "ran"


@app.task("async-sleeper")
async def async_sleeper(request: dict[str, Any], ctx: TaskContext) -> str:
    """An async handler that awaits for request.seconds; marks when it is cancelled."""
    mark(ctx, "started")
    try:
        await asyncio.sleep(float(request.get("seconds", 120)))
    except asyncio.CancelledError:
        mark(ctx, "cancelled")
        raise
    mark(ctx, "finished")
    return "slept"
