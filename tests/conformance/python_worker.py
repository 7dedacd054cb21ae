"""The Python conformance worker: the handlers of docs/conformance.md on the Python SDK's
public API, run as ``python -m tests.conformance.python_worker``.

It reads its settings from the ``ASYNCTASK_WORKER_*`` variables the suite sets (the SDK's
own :class:`~asynctask_worker.WorkerSettings`), logs to stderr, serves until SIGTERM and
drains as the protocol says: everything here is what any worker built on the SDK does.
Each queue is served by the handler of the same name (the Python SDK dispatches on the
task's ``spec.queue``).
"""

from __future__ import annotations

import hashlib
import io
import sys
import time
from pathlib import Path
from typing import Any

from asynctask_worker import App, Blob, Payload, TaskContext, TaskFailed
from asynctask_worker.cli import main

app = App("conformance")


def _pause(ctx: TaskContext, seconds: float) -> None:
    """Wait ``seconds``, or less if the task is told to stop (then raise, as a handler
    that honours cancellation does)."""
    if ctx.wait_cancelled(max(0.0, seconds)):
        ctx.raise_if_cancelled()


@app.task("conformance.echo")
def echo(request: Any) -> Any:
    return request


@app.task("conformance.fail")
def fail(request: dict[str, Any]) -> None:
    reason = str(request.get("reason") or "Refused")
    raise TaskFailed(str(request.get("message") or ""), reason=reason)


@app.task("conformance.crash")
def crash(request: dict[str, Any]) -> None:
    raise RuntimeError(str(request.get("message") or "crash"))


@app.task("conformance.progress")
def progress(request: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    steps = [int(p) for p in request.get("steps") or []]
    interval = float(request.get("intervalMs", 600)) / 1000
    for percent in steps:
        ctx.progress(percent, f"step {percent}")
        _pause(ctx, interval)
    return {"steps": len(steps)}


@app.task("conformance.sleep")
def sleep(request: dict[str, Any], ctx: TaskContext) -> dict[str, float]:
    seconds = float(request.get("seconds", 30))
    _pause(ctx, seconds)
    return {"slept": seconds}


@app.task("conformance.stubborn")
def stubborn(request: dict[str, Any]) -> dict[str, float]:
    seconds = float(request.get("seconds", 30))
    time.sleep(seconds)  # never looks at the cancellation: only a hard stop ends it early
    return {"slept": seconds}


@app.task("conformance.big")
def big(request: dict[str, Any]) -> dict[str, str]:
    return {"data": "x" * int(request["bytes"])}


@app.task("conformance.mark")
def mark(request: dict[str, Any], ctx: TaskContext) -> dict[str, bool]:
    with Path(request["path"]).open("a") as out:
        out.write(f"{ctx.uid} {ctx.attempt}\n")
    _pause(ctx, float(request.get("seconds", 0)))
    return {"marked": True}


#: ``conformance.blob``'s data: byte ``i`` is ``i % 251``. A block of whole periods, so that
#: every block starts where the pattern does.
_BLOCK = bytes(range(251)) * 4096


class PatternReader(io.RawIOBase):
    """``size`` bytes of the deterministic pattern, made as they are read (never whole)."""

    def __init__(self, size: int) -> None:
        self.size, self.pos = size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        start = self.pos % len(_BLOCK)
        n = min(len(view), self.size - self.pos, len(_BLOCK) - start)
        view[:n] = _BLOCK[start : start + n]
        self.pos += n
        return n


@app.task("conformance.digest")
def digest(request: Payload) -> dict[str, Any]:
    sha, size = hashlib.sha256(), 0
    with request.open() as src:
        while chunk := src.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return {"sha256": sha.hexdigest(), "size": size}


@app.task("conformance.blob")
def blob(request: dict[str, Any]) -> Blob:
    return Blob(io.BufferedReader(PatternReader(int(request["bytes"]))))


if __name__ == "__main__":
    sys.exit(main(["tests.conformance.python_worker:app"]))
