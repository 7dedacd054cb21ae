"""The chaos suite's handler (served by worker subprocesses).

Every execution is counted from the worker's side: before it sleeps, the handler appends
one line (uid, attempt, pid) to a file of its process under ``$CHAOS_EXECUTIONS``. A
line is short and written with one ``write`` in append mode, so a SIGKILL never leaves
half a line, and an execution that a kill interrupts is still counted. It also appends
``start <epoch> <uid>`` and ``end <epoch> <uid>`` to ``<pid>.spans`` (an execution a kill
cut short has no end), for the variant under an AsyncQueue's in-flight cap.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from asynctask_worker import App, TaskContext

app = App("chaos")


@app.task("chaos")
def chaos(request: dict[str, Any], ctx: TaskContext) -> dict[str, int]:
    """Counts its execution, sleeps ``request.sleep`` seconds, succeeds."""
    folder = Path(os.environ["CHAOS_EXECUTIONS"])
    with (folder / f"{os.getpid()}.log").open("a") as out:
        out.write(f"{ctx.uid} {ctx.attempt} {os.getpid()}\n")
    spans = folder / f"{os.getpid()}.spans"  # when it ran: the in-flight cap's evidence
    with spans.open("a") as out:
        out.write(f"start {time.time():.6f} {ctx.uid}\n")
    time.sleep(float(request.get("sleep", 0.1)))
    with spans.open("a") as out:
        out.write(f"end {time.time():.6f} {ctx.uid}\n")
    return {"n": int(request.get("n", 0))}
