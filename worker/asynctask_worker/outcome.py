"""Turning what a handler did into the status message the operator receives."""

from __future__ import annotations

import asyncio
import json
import traceback
from typing import Any

from pydantic_core import to_jsonable_python

from asynctask_worker.app import TaskFailed
from asynctask_worker.context import TaskCancelled
from asynctask_worker.messages import ErrorInfo, Phase

#: The largest result (as JSON) a worker reports; larger ones end the task in Error.
MAX_RESULT_BYTES = 64 * 1024
TRACEBACK_CHARS = 4000


class Outcome:
    """The end of one attempt: a terminal phase plus result or error."""

    def __init__(self, phase: Phase, result: Any = None, error: ErrorInfo | None = None,
                 message: str | None = None) -> None:
        self.phase = phase
        self.result = result
        self.error = error
        self.message = message

    def __repr__(self) -> str:
        return f"Outcome({self.phase.value}, error={self.error!r})"


def succeeded(value: Any) -> Outcome:
    try:
        result = to_jsonable_python(value)
        size = len(json.dumps(result, separators=(",", ":")))
    except (TypeError, ValueError) as exc:
        return Outcome(Phase.ERROR, error=ErrorInfo(
            reason="ResultNotSerializable",
            message=f"the handler returned a value that is not JSON: {exc}"[:4096]))
    if size > MAX_RESULT_BYTES:
        return Outcome(Phase.ERROR, error=ErrorInfo(
            reason="ResultTooLarge",
            message=f"the result is {size} bytes as JSON; the limit is {MAX_RESULT_BYTES}. "
                    "Store large results elsewhere and return a reference."))
    return Outcome(Phase.SUCCEEDED, result=result, message="Succeeded")


def from_exception(exc: BaseException, *, cancel_reason: str = "") -> Outcome:
    if isinstance(exc, TaskFailed):
        return Outcome(Phase.FAILED, error=ErrorInfo(reason=exc.reason, message=exc.message[:4096]),
                       message=exc.message[:1024])
    if isinstance(exc, TaskCancelled | asyncio.CancelledError) or cancel_reason:
        return stopped(cancel_reason or "Cancelled")
    text = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc))
    return Outcome(Phase.ERROR, error=ErrorInfo(
        reason="HandlerException", message=text[:4096], traceback=tb[-TRACEBACK_CHARS:]),
        message=text[:1024])


def stopped(reason: str) -> Outcome:
    """The handler was stopped: cancelled by the user, or out of time."""
    if reason == "TimedOut":
        return Outcome(Phase.TIMED_OUT, error=ErrorInfo(
            reason="TimeLimitExceeded", message="the task ran longer than spec.timeoutSeconds"),
            message="TimedOut")
    return Outcome(Phase.CANCELLED, error=ErrorInfo(reason="Cancelled", message=reason),
                   message="Cancelled")
