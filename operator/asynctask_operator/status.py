"""Pure status logic: which worker messages move a task, and the status they produce.

Delivery is at-least-once and messages can arrive late, twice, or out of order, so every
transition here is idempotent and monotonic:

* a terminal phase (Succeeded, Failed, Error, Cancelled, TimedOut) never changes again;
* an older attempt never overrides a newer one;
* within an attempt the phase only moves forward and progress never goes backwards.

Conditions follow Kubernetes conventions so that ``kubectl wait``, kstatus (Flux) and
Argo CD understand a task: ``Ready``, ``Completed``, ``Reconciling``, ``Stalled``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from asynctask_operator.limits import ERROR_CHARS, MESSAGE_CHARS
from asynctask_worker.messages import Phase, StatusMessage

CONDITION_TYPES = ("Ready", "Completed", "Reconciling", "Stalled")
#: Phases GitOps tools should report as failed rather than wait on forever.
STALLED_PHASES = frozenset({Phase.FAILED, Phase.ERROR, Phase.TIMED_OUT, Phase.CANCELLED})


class Change(enum.Enum):
    """What a worker message means for the stored status."""

    IGNORE = "ignore"  # stale, duplicate, or the task is already finished
    PROGRESS = "progress"  # same phase, newer progress/message: may be coalesced
    PHASE = "phase"  # a phase change (or a new attempt): written at once


#: How the operator writes times: RFC 3339 in UTC, whole seconds.
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: Times a deadline counts from (queuedTime, startTime, completionTime, nextAttemptTime)
#: keep microseconds, like Kubernetes' MicroTime: cut to whole seconds, a timeout counted
#: from them would fire up to a second early.
PRECISE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def rfc3339(at: datetime) -> str:
    return at.strftime(TIME_FORMAT)


def precise_time(at: datetime) -> str:
    """RFC 3339 in UTC with microseconds, for the times deadlines are computed from."""
    return at.astimezone(UTC).strftime(PRECISE_TIME_FORMAT)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time of the status (aware, UTC), with or without fractional seconds.

    The operator writes deadline times with microseconds (:func:`precise_time`) and the
    others in whole seconds (:func:`rfc3339`); both parse, as do offsets of other writers.
    """
    parsed = datetime.fromisoformat(text.upper())
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def seconds_between(start: str, end: str) -> float:
    """Seconds from one status timestamp to another."""
    return (parse_time(end) - parse_time(start)).total_seconds()


def phase_of(status: dict[str, Any]) -> Phase | None:
    return parse_phase(status.get("phase"))


def parse_phase(raw: object) -> Phase | None:
    """The phase a stored string names, or None (absent, or not a phase)."""
    try:
        return Phase(raw) if isinstance(raw, str) and raw else None
    except ValueError:
        return None


def order(status: dict[str, Any]) -> tuple[int, int, int, int]:
    """Sort key of stored statuses: later attempt, then a retry scheduled past it, then
    later phase, then more progress. A status waiting for a retry (Pending, ``nextAttempt``)
    comes after everything of the attempt that failed: a late watch event of that attempt's
    Processing must not take the task back from its retry (which would then never fire)."""
    attempts = int(status.get("attempts") or 0)
    retry = 1 if int(status.get("nextAttempt") or 0) > attempts else 0
    return (attempts, retry, rank(phase_of(status)), int(status.get("progress") or 0))


def rank(phase: Phase | None) -> int:
    if phase is None:
        return 0
    if phase is Phase.PENDING:
        return 1
    if phase is Phase.PROCESSING:
        return 2
    return 3


def classify(status: dict[str, Any], msg: StatusMessage, last_seq: int | None = None) -> Change:
    """What ``msg`` means for ``status``; ``last_seq`` is the newest sequence number of the
    current attempt already applied (if known), so reordered messages are recognised."""
    current = phase_of(status)
    if current is not None and current.terminal:
        return Change.IGNORE
    attempts = int(status.get("attempts") or 0)
    if msg.attempt < max(attempts, int(status.get("nextAttempt") or 0)):
        return Change.IGNORE  # an older attempt (a retry is already scheduled past it)
    if msg.attempt > attempts:
        return Change.PHASE  # a new attempt started (or finished at once)
    if rank(msg.phase) > rank(current):
        return Change.PHASE
    if msg.phase is not Phase.PROCESSING or current is not Phase.PROCESSING:
        return Change.IGNORE
    if last_seq is not None and msg.seq <= last_seq:
        return Change.IGNORE
    if msg.progress is None and msg.message is None:
        return Change.IGNORE
    progress = int(status.get("progress") or 0)
    if msg.progress is not None and msg.progress < progress:
        return Change.IGNORE
    if msg.progress == progress and (msg.message is None or msg.message == status.get("message")):
        return Change.IGNORE
    return Change.PROGRESS


def implied_start(msg: StatusMessage) -> StatusMessage | None:
    """The ``Processing`` a worker withheld (its start window, docs/protocol.md) from an
    end that carries ``started_at``, as the worker would have sent it; None otherwise."""
    if msg.started_at is None:
        return None
    return StatusMessage(
        task=msg.task,
        attempt=msg.attempt,
        seq=msg.seq,
        phase=Phase.PROCESSING,
        message="Processing",
        worker=msg.worker,
        at=msg.started_at,
    )


def apply(
    status: dict[str, Any], msg: StatusMessage, now: datetime, generation: int | None
) -> dict[str, Any]:
    """The new status after ``msg`` (call only when :func:`classify` said it changes)."""
    new = dict(status)
    if msg.attempt > int(status.get("attempts") or 0):
        for key in ("nextAttempt", "nextAttemptTime"):
            new.pop(key, None)
        new["attempts"] = msg.attempt
        new["startTime"] = precise_time(msg.start_time)
        new["progress"] = 0
    if msg.worker:
        new["worker"] = msg.worker
    if msg.progress is not None:
        new["progress"] = msg.progress
    if msg.message is not None:
        new["message"] = msg.message
    new["phase"] = msg.phase.value
    if msg.phase.terminal:
        new["completionTime"] = precise_time(msg.at)
        if msg.phase is Phase.SUCCEEDED and msg.result_ref is not None:
            new["resultRef"] = msg.result_ref.document()  # stored: no inline result
            new.pop("result", None)
            new["progress"] = 100
            new.pop("error", None)
        elif msg.phase is Phase.SUCCEEDED:
            new["result"] = msg.result
            new["progress"] = 100
            new.pop("error", None)
        elif msg.error is not None:
            new["error"] = msg.error.model_dump(exclude_none=True)
    return finish(new, now, generation)


#: The reason a task held for ``spec.notBefore`` shows (its conditions' reason).
SCHEDULED = "Scheduled"


def held(status: dict[str, Any]) -> bool:
    """Is the task Pending but not yet handed to the broker (held for ``spec.notBefore``)?

    A held status has a ``scheduledTime`` and no ``messageId``: the first publish records
    one, so an operator that starts again knows whether the due time was acted on."""
    return (
        phase_of(status) is Phase.PENDING
        and bool(status.get("scheduledTime"))
        and not status.get("messageId")
        and not status.get("nextAttempt")
    )


#: The reasons a task held by its queue's AsyncQueue shows (``status.reason``):
#: :class:`queues.policy.Reason`'s values, repeated here so status stays free of it.
QUEUE_REASONS = frozenset({"Paused", "ConcurrencyLimit", "RateLimited", "WaitingForTurn"})


def held_by_queue(status: dict[str, Any]) -> bool:
    """Is the task Pending, held back by its queue's policy, never handed to the broker?"""
    return (
        phase_of(status) is Phase.PENDING
        and status.get("reason") in QUEUE_REASONS
        and not status.get("messageId")
        and not status.get("nextAttempt")
    )


def queue_held(
    status: dict[str, Any], reason: str, message: str, now: datetime, generation: int | None
) -> dict[str, Any]:
    """The status of a new task its queue's policy holds back: Pending, ``reason`` one of
    :data:`QUEUE_REASONS`, not queued (no ``queuedTime``, no ``messageId``). Written once
    (the task's one extra write); the reason is not rewritten when it changes later."""
    if phase_of(status) is not None:
        return status
    new = dict(status)
    new.update(
        phase=Phase.PENDING.value,
        progress=0,
        attempts=0,
        reason=reason,
        message=message[:MESSAGE_CHARS],
    )
    return finish(new, now, generation)


def scheduled(
    status: dict[str, Any], not_before: datetime, now: datetime, generation: int | None
) -> dict[str, Any]:
    """The status of a new task held until ``not_before``: Pending, reason Scheduled, not
    queued (no ``queuedTime``, no ``messageId``), due at ``scheduledTime``. Only for a task
    with no phase yet."""
    if phase_of(status) is not None:
        return status
    new = dict(status)
    new.update(
        phase=Phase.PENDING.value,
        progress=0,
        attempts=0,
        scheduledTime=precise_time(not_before),
        message=f"scheduled for {rfc3339(not_before.astimezone(UTC))}",
    )
    return finish(new, now, generation)


def pending(
    status: dict[str, Any], message_id: str, now: datetime, generation: int | None
) -> dict[str, Any]:
    """The status once the task was handed to the broker (never downgrades a later phase).
    A held task's ``queuedTime`` is its due time: ``queueTimeoutSeconds`` counts from it."""
    new = dict(status)
    new.setdefault("queuedTime", precise_time(now))
    new["messageId"] = message_id
    if phase_of(status) is None or held(status) or held_by_queue(status):
        new.pop("reason", None)
        new.update(
            phase=Phase.PENDING.value, progress=0, attempts=0, message="Waiting for a worker"
        )
    return finish(new, now, generation)


def end(
    status: dict[str, Any],
    phase: Phase,
    reason: str,
    message: str,
    now: datetime,
    generation: int | None,
) -> dict[str, Any]:
    """End the task for a reason of the operator's own: an invalid spec, a deadline, a
    cancellation, a dead-lettered message. A task already finished stays as it is."""
    assert phase.terminal
    if (phase_of(status) or Phase.PENDING).terminal:
        return status
    new = dict(
        status,
        phase=phase.value,
        message=message[:MESSAGE_CHARS],
        error={"reason": reason, "message": message[:ERROR_CHARS]},
        completionTime=precise_time(now),
    )
    for key in ("nextAttempt", "nextAttemptTime"):
        new.pop(key, None)
    return finish(new, now, generation)


def retrying(
    status: dict[str, Any],
    msg: StatusMessage,
    retry_at: datetime,
    retries: int,
    now: datetime,
    generation: int | None,
) -> dict[str, Any]:
    """Attempt ``msg.attempt`` ended in Error and a retry is left: back to Pending until
    ``retry_at``; the error is kept as ``lastError``. Not a terminal phase. An attempt
    whose start was never reported (it ended within the worker's start window) gets its
    ``startTime`` here."""
    new = dict(status)
    if msg.attempt > int(status.get("attempts") or 0):
        new["startTime"] = precise_time(msg.start_time)
    new.update(
        phase=Phase.PENDING.value,
        attempts=max(msg.attempt, int(status.get("attempts") or 0)),
        nextAttempt=msg.attempt + 1,
        nextAttemptTime=precise_time(retry_at),
        progress=0,
    )
    if msg.worker:
        new["worker"] = msg.worker
    reason = msg.error.reason if msg.error else "Error"
    if msg.error is not None:
        new["lastError"] = msg.error.model_dump(exclude_none=True)
    new["message"] = (
        f"attempt {msg.attempt} ended in Error ({reason}); retry "
        f"{msg.attempt} of {retries} at {rfc3339(retry_at)}"
    )
    return finish(new, now, generation)


def retries_left(msg: StatusMessage, retries: int) -> bool:
    """Whether an Error of ``msg.attempt`` is retried: attempts so far ≤ spec.retries.

    Every extra attempt counts, whether the operator retried after an Error or the broker
    redelivered the message of a lost worker."""
    return msg.phase is Phase.ERROR and msg.attempt <= retries


def finish(status: dict[str, Any], now: datetime, generation: int | None) -> dict[str, Any]:
    status["lastUpdateTime"] = rfc3339(now)
    if generation is not None:
        status["observedGeneration"] = generation
    status["conditions"] = conditions(status, now, generation)
    return status


def conditions(
    status: dict[str, Any], now: datetime, generation: int | None
) -> list[dict[str, Any]]:
    phase = phase_of(status) or Phase.PENDING
    reason = SCHEDULED if held(status) else phase.value
    if held_by_queue(status):
        reason = str(status["reason"])
    message = str(status.get("message") or phase.value)[:MESSAGE_CHARS]
    wanted = {
        "Ready": phase is Phase.SUCCEEDED,
        "Completed": phase.terminal,
        "Reconciling": not phase.terminal,
        "Stalled": phase in STALLED_PHASES,
    }
    old = {c.get("type"): c for c in status.get("conditions") or []}
    out = []
    for ctype in CONDITION_TYPES:
        value = "True" if wanted[ctype] else "False"
        previous = old.get(ctype) or {}
        since = (
            previous.get("lastTransitionTime") if previous.get("status") == value else None
        ) or rfc3339(now)
        cond: dict[str, Any] = {
            "type": ctype,
            "status": value,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        out.append(cond)
    return out
