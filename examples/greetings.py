"""The README's worker: ``asynctask-worker greetings:app`` serves tasks of queue ``greet``."""

import time

from pydantic import BaseModel, Field

from asynctask_worker import App, TaskContext, TaskFailed

app = App("greetings")


class GreetRequest(BaseModel):  # spec.request, validated before the handler runs
    name: str
    steps: int = Field(default=3, ge=1, le=100)
    step_seconds: float = Field(default=1.0, ge=0, le=60)


@app.task("greet")  # serves the AsyncTasks whose spec.queue is "greet"
def greet(request: GreetRequest, ctx: TaskContext) -> dict[str, str]:
    if request.name == "nobody":  # an expected, business failure: Failed, never retried
        raise TaskFailed("nobody cannot be greeted", reason="UnknownName")
    for step in range(1, request.steps + 1):
        ctx.raise_if_cancelled()  # spec.cancel: true stops it here: Cancelled
        time.sleep(request.step_seconds)  # the real work goes here
        ctx.progress(100 * step / request.steps, f"step {step} of {request.steps}")
    return {"greeting": f"Hello, {request.name}!"}  # Succeeded; .status.result
