"""Turning what a handler did into the terminal status the operator receives."""

from __future__ import annotations

import asyncio
import json
import traceback
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_jsonable_python

from asynctask_worker._runtime.payload_io import Moved
from asynctask_worker.app import TaskFailed
from asynctask_worker.context import CANCELLED, TIMED_OUT, TaskCancelled
from asynctask_worker.messages import MAX_REQUEST_DEPTH, ErrorInfo, Phase, json_depth
from asynctask_worker.payloads import PayloadRef

#: The largest result (as JSON) a worker reports; larger ones end the task in Error.
MAX_RESULT_BYTES = 64 * 1024
TRACEBACK_CHARS = 4000
_MESSAGE_CHARS = 1024
_ERROR_CHARS = 4096
#: How to lift the limit, in every error that a configured object storage would avoid.
ENABLE_STORAGE = (
    "Large and binary results go to S3-compatible object storage once the operator has it "
    "configured (ASYNCTASK_S3_ENDPOINT and ASYNCTASK_S3_BUCKET; docs/payloads.md)"
)


@dataclass(frozen=True)
class Outcome:
    """The end of one attempt: a terminal phase plus result or error (picklable)."""

    phase: Phase
    result: Any = None
    error: ErrorInfo | None = None
    message: str | None = None
    #: A Succeeded result stored in object storage (then ``result`` is None).
    result_ref: PayloadRef | None = None
    #: What the attempt moved to and from object storage (when it had a grant or a ref).
    moved: Moved | None = None


def encode_json(value: Any) -> tuple[Any, bytes] | Outcome:
    """A handler's value as JSON (the value and its compact bytes), or the Error it is."""
    try:
        result = to_jsonable_python(value)
        depth = json_depth(result)
        if depth > MAX_REQUEST_DEPTH:
            # The status message would be refused by the operator's JSON parser: nobody
            # would end the task. Said here, where the handler's author can see why.
            return Outcome(
                Phase.ERROR,
                error=ErrorInfo(
                    reason="ResultTooDeep",
                    message=f"the result nests {depth} levels deep; the limit is "
                    f"{MAX_REQUEST_DEPTH}. Flatten it.",
                ),
                message="ResultTooDeep",
            )
        data = json.dumps(result, separators=(",", ":")).encode()
    except (TypeError, ValueError, RecursionError) as exc:
        too_deep = isinstance(exc, RecursionError) or "depth exceeded" in str(exc)
        reason = "ResultTooDeep" if too_deep else "ResultNotSerializable"
        return Outcome(
            Phase.ERROR,
            error=ErrorInfo(
                reason=reason,
                message=f"the handler returned a value that is not JSON: {exc}"[:_ERROR_CHARS],
            ),
            message=reason,
        )
    return result, data


def succeeded(value: Any) -> Outcome:
    """A result reported inline (no object storage): JSON within :data:`MAX_RESULT_BYTES`."""
    encoded = encode_json(value)
    if isinstance(encoded, Outcome):
        return encoded
    result, data = encoded
    if len(data) > MAX_RESULT_BYTES:
        return too_large(len(data))
    return inline(result)


def inline(result: Any) -> Outcome:
    """Succeeded, the result in the status message."""
    return Outcome(Phase.SUCCEEDED, result=result, message="Succeeded")


def stored(ref: PayloadRef) -> Outcome:
    """Succeeded, the result in object storage (``result_ref``; no ``result``)."""
    return Outcome(Phase.SUCCEEDED, result_ref=ref, message="Succeeded")


def too_large(size: int) -> Outcome:
    """A result too large to report, and no object storage to put it in."""
    return Outcome(
        Phase.ERROR,
        error=ErrorInfo(
            reason="ResultTooLarge",
            message=f"the result is {size} bytes as JSON; the limit is {MAX_RESULT_BYTES}. "
            f"{ENABLE_STORAGE}, or store it elsewhere and return a reference.",
        ),
        message="ResultTooLarge",
    )


def storage_off(what: str) -> Outcome:
    """Binary data returned, but the task came with no place to store it."""
    return Outcome(
        Phase.ERROR,
        error=ErrorInfo(
            reason="PayloadStorageOff",
            message=f"the handler returned {what}, which only object storage can hold, and "
            f"this task came without a storage grant. {ENABLE_STORAGE}.",
        ),
        message="PayloadStorageOff",
    )


def transfer_failed(reason: str, text: str) -> Outcome:
    """A stored request or result that could not be moved (or did not check out)."""
    return Outcome(
        Phase.ERROR,
        error=ErrorInfo(reason=reason[:128], message=text[:_ERROR_CHARS]),
        message=text[:_MESSAGE_CHARS],
    )


def from_exception(exc: BaseException, *, cancel_reason: str = "") -> Outcome:
    """``TaskFailed`` → Failed; a cancellation → Cancelled/TimedOut; anything else → Error."""
    if cancel_reason in (CANCELLED, TIMED_OUT):
        return stopped(cancel_reason)
    if isinstance(exc, TaskFailed):
        return Outcome(
            Phase.FAILED,
            error=ErrorInfo(
                reason=exc.reason[:128] or "TaskFailed", message=exc.message[:_ERROR_CHARS]
            ),
            message=exc.message[:_MESSAGE_CHARS],
        )
    if isinstance(exc, TaskCancelled | asyncio.CancelledError):
        return stopped(cancel_reason or CANCELLED)
    text = f"{type(exc).__name__}: {exc}"
    tb = "".join(traceback.format_exception(exc))
    return Outcome(
        Phase.ERROR,
        error=ErrorInfo(
            reason="HandlerException", message=text[:_ERROR_CHARS], traceback=tb[-TRACEBACK_CHARS:]
        ),
        message=text[:_MESSAGE_CHARS],
    )


def invalid_request(exc: ValidationError | ValueError) -> Outcome:
    """The request does not fit the handler's request type: retrying will not help."""
    text = f"the request is not valid: {exc}"
    return Outcome(
        Phase.FAILED,
        error=ErrorInfo(reason="InvalidRequest", message=text[:_ERROR_CHARS]),
        message=text[:_MESSAGE_CHARS],
    )


def process_died(exitcode: int | None) -> Outcome:
    """Process mode: the task's process ended without reporting (crash, OOM kill, exit)."""
    how = (
        f"was killed by signal {-exitcode}"
        if exitcode is not None and exitcode < 0
        else f"exited with code {exitcode}"
    )
    text = f"the task's process {how} before reporting an outcome"
    return Outcome(
        Phase.ERROR, error=ErrorInfo(reason="WorkerProcessDied", message=text), message=text
    )


def stopped(reason: str, detail: str = "", *, before_start: bool = False) -> Outcome:
    """The task was stopped: cancelled by the user, or out of time."""
    when = " before it started" if before_start else ""
    why = f": {detail}" if detail else ""
    if reason == TIMED_OUT:
        return Outcome(
            Phase.TIMED_OUT,
            error=ErrorInfo(
                reason="TimeLimitExceeded",
                message=f"the task ran out of time{when}{why}"[:_ERROR_CHARS],
            ),
            message="TimedOut",
        )
    return Outcome(
        Phase.CANCELLED,
        error=ErrorInfo(
            reason="Cancelled", message=f"the task was cancelled{when}{why}"[:_ERROR_CHARS]
        ),
        message="Cancelled",
    )
