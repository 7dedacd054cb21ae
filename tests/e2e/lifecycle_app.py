"""Handlers that exercise the lifecycle in e2e tests (served by a worker subprocess).

Side effects a test must observe from outside (did the handler run? did it see the
cancellation?) are written as marker files under $LIFECYCLE_MARKERS, named by task name.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from asynctask_worker import App, TaskContext, TaskFailed

app = App("lifecycle")


def mark(ctx: TaskContext, what: str) -> None:
    folder = Path(os.environ["LIFECYCLE_MARKERS"])
    (folder / f"{ctx.namespace}.{ctx.name}.{what}").write_text(str(ctx.attempt))


@app.task("burst")
def burst(request: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    """Reports progress 20 times within about half a second, then succeeds: well inside
    the operator's one-second progress interval, even on a loaded machine."""
    for i in range(1, 21):
        ctx.progress(i * 5, f"tick {i}")
        time.sleep(0.02)
    return {"ticks": 20}


@app.task("sleepy")
def sleepy(request: dict[str, Any], ctx: TaskContext) -> str:
    """Runs for request.seconds, checking for cancellation; marks what happened."""
    mark(ctx, "started")
    if ctx.wait_cancelled(float(request.get("seconds", 60))):
        mark(ctx, "cancelled")
        ctx.raise_if_cancelled()
    return "slept"


@app.task("flaky")
def flaky(request: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    """Raises until attempt request.succeed_on; then succeeds."""
    if ctx.attempt < int(request.get("succeed_on", 1_000)):
        raise RuntimeError(f"attempt {ctx.attempt} fails")
    return {"attempt": ctx.attempt}


@app.task("refuses")
def refuses(request: dict[str, Any]) -> None:
    raise TaskFailed("the request was refused", reason="Refused")


@app.task("huge-result")
def huge_result(request: dict[str, Any]) -> str:
    return "x" * 100_000


@app.task("poison")
def poison(request: dict[str, Any]) -> None:
    """Kills the worker process that runs it, every time."""
    os._exit(3)


@app.task("marker")
def marker(request: dict[str, Any], ctx: TaskContext) -> str:
    mark(ctx, "ran")
    return "ran"


@app.task("ticking")
def ticking(request: dict[str, Any], ctx: TaskContext) -> str:
    """Reports progress every 0.3 s for request.seconds; marks a cancellation."""
    mark(ctx, "started")
    deadline = time.monotonic() + float(request.get("seconds", 60))
    step = 0
    while time.monotonic() < deadline:
        if ctx.wait_cancelled(0.3):
            mark(ctx, "cancelled")
            ctx.raise_if_cancelled()
        step += 1
        ctx.progress(min(99, step), f"tick {step}")
    return "done"


@app.task("stubborn")
def stubborn(request: dict[str, Any], ctx: TaskContext) -> str:
    """Ignores cancellation: only a hard stop ends it. Marks its pid, and if it ever ends."""
    mark(ctx, "started")
    folder = Path(os.environ["LIFECYCLE_MARKERS"])
    (folder / f"{ctx.namespace}.{ctx.name}.pid").write_text(str(os.getpid()))
    time.sleep(float(request.get("seconds", 120)))
    mark(ctx, "finished")
    return "finished"


@app.task("stopwatch")
def stopwatch(request: dict[str, Any], ctx: TaskContext) -> None:
    """Runs until told to stop; marks when it began and when it was told (wall clock)."""
    began = time.time()
    while not ctx.cancelled and time.time() - began < 60:
        time.sleep(0.001)
    told = time.time()
    mark(ctx, f"ran-{told - began:.6f}")
    ctx.raise_if_cancelled()


@app.task("echo")
def echo(request: Any) -> dict[str, Any]:
    """What arrived, as a digest of its canonical JSON: the test compares it with what the
    apiserver stored."""
    text = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return {
        "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest(),
        "type": type(request).__name__,
    }


@app.task("stamp")
def stamp(request: dict[str, Any], ctx: TaskContext) -> dict[str, float]:
    """Records when the handler started (wall clock), one line per run, so a test sees both
    the start time and how many times the task ran."""
    started = time.time()
    folder = Path(os.environ["LIFECYCLE_MARKERS"])
    with (folder / f"{ctx.namespace}.{ctx.name}.starts").open("a") as out:
        out.write(f"{started:.6f}\n")
    return {"started": started}
