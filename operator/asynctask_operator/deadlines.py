"""Which deadlines a task's status calls for: pure, in the style of :mod:`status`.

A deadline is a time (epoch seconds) at which the operator must look at a task again: a
queue or run timeout, the end of a retry's backoff, a TTL after it finished, the due time
(``spec.notBefore``) of a task held until then. The times come
from the status's own timestamps, so after a restart they are set again exactly as before.
:mod:`timers` keeps them and fires them; this module only decides them.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from asynctask_operator.spec import AsyncTaskSpec
from asynctask_operator.status import held, parse_time, phase_of
from asynctask_worker.messages import Phase


class Kind(StrEnum):
    QUEUE_TIMEOUT = "queue-timeout"  # still Pending after spec.queueTimeoutSeconds
    RUN_TIMEOUT = "run-timeout"  # still Processing after spec.timeoutSeconds
    RETRY = "retry"  # backoff over: queue the next attempt
    CANCEL_CONFIRM = "cancel-confirm"  # the worker did not confirm a cancellation in time
    TTL = "ttl"  # spec.ttlSecondsAfterFinished passed: delete
    NOT_BEFORE = "not-before"  # spec.notBefore reached: queue a task held until then


#: What :func:`wanted` asks for: a kind set to a time, or cleared (None). A kind absent from
#: the answer is left as it is (e.g. CANCEL_CONFIRM, which a cancellation sets, not a status).
Wanted = dict[Kind, float | None]


def epoch(timestamp: str) -> float:
    return parse_time(timestamp).timestamp()


def wanted(status: Mapping[str, Any], spec: AsyncTaskSpec | None) -> Wanted:
    """The deadlines that ``status`` (under ``spec``) calls for."""
    phase = phase_of(dict(status))
    if phase is None or spec is None:
        return {}
    if phase.terminal:
        out: Wanted = dict.fromkeys(
            (Kind.QUEUE_TIMEOUT, Kind.RUN_TIMEOUT, Kind.RETRY, Kind.CANCEL_CONFIRM, Kind.NOT_BEFORE)
        )
        if spec.ttl_seconds_after_finished is not None and status.get("completionTime"):
            out[Kind.TTL] = epoch(status["completionTime"]) + spec.ttl_seconds_after_finished
        return out
    if held(dict(status)):
        # Held: queued when spec.notBefore is reached, never earlier; the time comes from
        # the object (the spec, else the status's copy), so a restart sets it again.
        due = spec.not_before_epoch()
        return {Kind.NOT_BEFORE: epoch(status["scheduledTime"]) if due is None else due}
    if phase is Phase.PENDING and status.get("nextAttemptTime"):
        return {Kind.RETRY: epoch(status["nextAttemptTime"])}
    if phase is Phase.PENDING and spec.queue_timeout_seconds and status.get("queuedTime"):
        return {Kind.QUEUE_TIMEOUT: epoch(status["queuedTime"]) + spec.queue_timeout_seconds}
    if phase is Phase.PROCESSING:
        out = {Kind.QUEUE_TIMEOUT: None}
        if spec.timeout_seconds and status.get("startTime"):
            out[Kind.RUN_TIMEOUT] = epoch(status["startTime"]) + spec.timeout_seconds
        return out
    return {}
