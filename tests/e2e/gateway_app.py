"""Handlers for the gateway's e2e tests (served by worker subprocesses the tests start)."""

from __future__ import annotations

import time
from typing import Any

from asynctask_worker import App, TaskContext

app = App("gateway-tests")


@app.task("gw-steps")
def steps(request: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    """Reports progress request.steps times, request.pause seconds apart, then succeeds."""
    count = int(request.get("steps", 3))
    for step in range(1, count + 1):
        time.sleep(float(request.get("pause", 1.5)))
        ctx.progress(100 * step // (count + 1), f"step {step} of {count}")
    return {"steps": count}


@app.task("gw-sleepy")
def sleepy(request: dict[str, Any], ctx: TaskContext) -> str:
    """Runs for request.seconds unless cancelled."""
    if ctx.wait_cancelled(float(request.get("seconds", 60))):
        ctx.raise_if_cancelled()
    return "slept"
