"""Handlers for tests/e2e/test_queues.py: one ``span`` handler on every queue the worker
is started with (``QUEUE_E2E_QUEUES``), which records when it started and ended.

Each run appends ``start <epoch> <namespace>/<name>`` when it begins and ``end <epoch>
<namespace>/<name>`` when it is done to ``$QUEUE_E2E_SPANS/<queue>.log`` (one short
line, appended in one write: lines of concurrent runs never mix). The handler sleeps for
``request.seconds``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from asynctask_worker import App, TaskContext

app = App("queue-e2e")


def record(queue: str, what: str, ctx: TaskContext) -> None:
    path = Path(os.environ["QUEUE_E2E_SPANS"]) / f"{queue}.log"
    line = f"{what} {time.time():.6f} {ctx.namespace}/{ctx.name}\n".encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def span_on(queue: str) -> None:
    def span(request: Any, ctx: TaskContext) -> str:
        record(queue, "start", ctx)
        seconds = float(request.get("seconds", 0.05)) if isinstance(request, dict) else 0.05
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not ctx.cancelled:
            time.sleep(min(0.01, max(0.0, deadline - time.monotonic())))
        record(queue, "end", ctx)
        return "done"

    app.task(queue)(span)


for _queue in filter(None, os.environ.get("QUEUE_E2E_QUEUES", "").split(",")):
    span_on(_queue)
