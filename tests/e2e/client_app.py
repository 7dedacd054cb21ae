"""Handlers for the client's and the CLI's e2e tests (served by the ``client_worker``
fixture): one queue per outcome the client turns into a result or an exception."""

from __future__ import annotations

import time
from typing import Any

from asynctask_worker import App, TaskContext, TaskFailed

app = App("client-tests")


@app.task("cl-steps")
def steps(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    """Reports progress request.steps times, request.pause seconds apart, then succeeds."""
    count = int(request.get("steps", 3))
    for step in range(1, count + 1):
        time.sleep(float(request.get("pause", 1.0)))
        ctx.progress(100 * step // (count + 1), f"step {step} of {count}")
    return {"steps": count, "greeting": f"Hello, {request.get('name', 'world')}!"}


@app.task("cl-refuses")
def refuses(request: dict[str, Any]) -> None:
    raise TaskFailed("the request was refused", reason="Refused")


@app.task("cl-raises")
def raises(request: dict[str, Any]) -> None:
    raise RuntimeError("the handler broke")


@app.task("cl-sleepy")
def sleepy(request: dict[str, Any], ctx: TaskContext) -> str:
    """Runs for request.seconds unless cancelled."""
    if ctx.wait_cancelled(float(request.get("seconds", 60))):
        ctx.raise_if_cancelled()
    return "slept"
