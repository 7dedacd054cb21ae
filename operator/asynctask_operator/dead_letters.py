"""What a dead-lettered task message says about its task: pure, like :mod:`status`.

A task message comes back dead-lettered when its workers kept dying (RabbitMQ's
``delivery_limit``) or a worker refused it (the reason in
``asynctask_worker.topology.DEAD_REASON_HEADER``). Its task must end in Error even when its
body cannot be read, so which task it was comes from the headers the operator publishes
it with, or from its message id (``task:<uid>:<attempt>``).
"""

from __future__ import annotations

from typing import Any

from asynctask_worker import topology
from asynctask_worker.messages import TaskRef


def wanted_task(
    headers: dict[str, Any], message_id: str | None
) -> tuple[TaskRef | str | None, int | None]:
    """Which task (a full ref, or only a uid) and attempt an unreadable task message was
    for: from the headers the operator publishes it with, else from its message id."""

    def text(key: str) -> str:
        value = headers.get(key)
        return value.decode(errors="replace") if isinstance(value, bytes) else str(value or "")

    attempt_header = headers.get(topology.TASK_ATTEMPT_HEADER)
    attempt = attempt_header if isinstance(attempt_header, int) else None
    try:
        return TaskRef(
            uid=text(topology.TASK_UID_HEADER),
            namespace=text(topology.TASK_NAMESPACE_HEADER),
            name=text(topology.TASK_NAME_HEADER),
        ), attempt
    except ValueError:
        pass
    parts = (message_id or "").split(":")
    if len(parts) == 3 and parts[0] == "task" and parts[1]:
        return parts[1], int(parts[2]) if parts[2].isdigit() else attempt
    return None, attempt


def dead_letter_error(
    why: str, attempt: int | None, headers: dict[str, Any], unreadable: str = ""
) -> tuple[str, str]:
    """The reason and message of a task whose message was dead-lettered."""
    which = f"attempt {attempt}'s message" if attempt else "its message"
    where = f"it was dead-lettered to {topology.DEAD_LETTER_QUEUE}"
    if why == "delivery_limit":
        return "DeliveryLimitExceeded", (
            f"{which} was delivered {topology.DEFAULT_DELIVERY_LIMIT} times and every worker "
            "that took it was lost before finishing (killed, crashed or disconnected); "
            f"{where}"
        )
    detail = headers.get(topology.DEAD_DETAIL_HEADER) or unreadable
    if isinstance(detail, bytes):
        detail = detail.decode(errors="replace")
    by = headers.get(topology.DEAD_BY_HEADER) or "a worker"
    if isinstance(by, bytes):
        by = by.decode(errors="replace")
    reason = "MalformedTaskMessage" if unreadable or why in MALFORMED else "MessageRejected"
    return reason, f"{by} refused {which} ({why}: {str(detail)[:1500]}); {where}"


#: The reasons of :class:`MalformedMessage`: a message nobody can read.
MALFORMED = frozenset(
    {"NotUtf8", "NotJson", "TooDeep", "NotAnObject", "UnknownVersion", "WrongKind", "InvalidFields"}
)


#: Every reason a dead letter may give: the metric's label is one of these or ``other``
#: (a header anyone could set must not create new series).
KNOWN = MALFORMED | {"NoHandler", "delivery_limit", "rejected", "expired", "maxlen", "unknown"}


def metric_label(why: str) -> str:
    return why if why in KNOWN else "other"
