"""Example task handlers, served by ``asynctask-worker example_tasks:app``.

* ``hello``: reports progress a few times and returns a greeting;
* ``always-fails``: raises an unexpected exception, so its task ends in ``Error``;
* ``business-failure``: rejects its input the expected way, so its task ends in ``Failed``;
* ``report``: returns a table of a few hundred KiB of JSON: with large payloads on
  (docs/payloads.md) the SDK stores it in the bucket and the task holds ``status.resultRef``;
  without them it ends in ``Error``, ``ResultTooLarge``, whose message says how to turn them on.
"""

from __future__ import annotations

import time

from pydantic import BaseModel

from asynctask_worker import App, TaskContext, TaskFailed

app = App("examples")


class HelloRequest(BaseModel):
    name: str = "world"
    steps: int = 5
    step_seconds: float = 0.2


@app.task("hello")
def hello(request: HelloRequest, ctx: TaskContext) -> dict[str, object]:
    for step in range(1, request.steps + 1):
        ctx.raise_if_cancelled()
        time.sleep(request.step_seconds)
        ctx.progress(100 * step // request.steps, f"step {step} of {request.steps}")
    return {"greeting": f"Hello, {request.name}!", "steps": request.steps}


@app.task("always-fails")
def always_fails(request: dict[str, object]) -> None:
    raise RuntimeError(f"this handler always raises (request was {request!r})")


@app.task("business-failure")
def business_failure(request: dict[str, object]) -> None:
    raise TaskFailed("the input was refused", reason="InputRefused")


class ReportRequest(BaseModel):
    rows: int = 5000


@app.task("report")
def report(request: ReportRequest) -> dict[str, object]:
    rows = [
        {"id": i, "name": f"item-{i:06d}", "value": round(i * 1.25, 2)} for i in range(request.rows)
    ]
    return {"title": f"A report of {request.rows} rows", "rows": rows}
