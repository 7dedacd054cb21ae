"""Names and declarations of everything AsyncTask creates in RabbitMQ.

Both sides declare what they use (declarations are idempotent when the arguments agree),
so the arguments live here, in one place: a queue declared twice with different
arguments is refused by the broker with PRECONDITION_FAILED.
"""

from __future__ import annotations

from typing import Any

TASK_QUEUE_PREFIX = "asynctask.tasks."
STATUS_QUEUE = "asynctask.status"
#: Control messages (cancel, timeout) go to this fanout exchange, which feeds a stream:
#: a worker that starts late still reads the cancellations of the last day, so a task
#: cancelled while Pending is never run, whichever worker picks it up.
CONTROL_EXCHANGE = "asynctask.control"
CONTROL_STREAM = "asynctask.control.log"
CONTROL_RETENTION = "1D"
#: Dead-lettered messages keep their routing key. Everything lands in DEAD_LETTER_QUEUE
#: (for people to inspect); task messages also land in DEAD_TASKS_QUEUE, which the
#: operator consumes to end their tasks in Error.
DEAD_LETTER_EXCHANGE = "asynctask.dead-letter"
DEAD_LETTER_QUEUE = "asynctask.dead-letter"
DEAD_TASKS_QUEUE = "asynctask.dead-letter.tasks"

#: A consumer that refuses a message says why in these headers: it publishes the message
#: to DEAD_LETTER_EXCHANGE itself, with them, then acks it. (A plain reject leaves only
#: ``x-death: rejected``, which tells nobody what was wrong.)
DEAD_REASON_HEADER = "x-asynctask-dead-reason"  # one word: NotJson, TooDeep, NoHandler…
DEAD_DETAIL_HEADER = "x-asynctask-dead-detail"  # the parser's words, cut short
DEAD_BY_HEADER = "x-asynctask-dead-by"  # who refused it (a worker id, "operator")
DEAD_QUEUE_HEADER = "x-asynctask-dead-queue"  # the queue it was refused from
DEAD_DETAIL_CHARS = 1000

#: Task messages carry their task in headers too, so that a message whose body cannot be
#: read still names the task it belongs to (the message id has the uid; these have all).
TASK_UID_HEADER = "asynctask-uid"
TASK_NAMESPACE_HEADER = "asynctask-namespace"
TASK_NAME_HEADER = "asynctask-name"
TASK_ATTEMPT_HEADER = "asynctask-attempt"

#: A message delivered this many times without being acked (a worker that keeps dying
#: on it) is dead-lettered instead of being offered again.
DEFAULT_DELIVERY_LIMIT = 5


def task_queue_name(queue: str) -> str:
    """The RabbitMQ queue that carries the tasks of one ``spec.queue``."""
    return TASK_QUEUE_PREFIX + queue


def quorum_queue_arguments(delivery_limit: int = DEFAULT_DELIVERY_LIMIT) -> dict[str, Any]:
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": delivery_limit,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
    }


def declare_dead_letter(channel: Any) -> None:
    channel.exchange_declare(DEAD_LETTER_EXCHANGE, exchange_type="topic", durable=True)
    for queue, pattern in ((DEAD_LETTER_QUEUE, "#"), (DEAD_TASKS_QUEUE, TASK_QUEUE_PREFIX + "#")):
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.queue_bind(queue, DEAD_LETTER_EXCHANGE, routing_key=pattern)


def declare_task_queue(channel: Any, queue: str) -> str:
    """Declare the durable quorum queue for ``spec.queue == queue``; returns its name."""
    name = task_queue_name(queue)
    channel.queue_declare(name, durable=True, arguments=quorum_queue_arguments())
    return name


def declare_status_queue(channel: Any) -> str:
    channel.queue_declare(STATUS_QUEUE, durable=True, arguments=quorum_queue_arguments())
    return STATUS_QUEUE


def declare_control_exchange(channel: Any) -> None:
    channel.exchange_declare(CONTROL_EXCHANGE, exchange_type="fanout", durable=True)
    channel.queue_declare(
        CONTROL_STREAM,
        durable=True,
        arguments={"x-queue-type": "stream", "x-max-age": CONTROL_RETENTION},
    )
    channel.queue_bind(CONTROL_STREAM, CONTROL_EXCHANGE)


def declare_all(channel: Any, queues: list[str] | tuple[str, ...] = ()) -> None:
    """Everything one side needs: dead-lettering, status, control and the task queues."""
    declare_dead_letter(channel)
    declare_status_queue(channel)
    declare_control_exchange(channel)
    for queue in queues:
        declare_task_queue(channel, queue)


def dead_letter_headers(
    headers: dict[str, Any] | None, *, queue: str, reason: str, detail: str, by: str
) -> dict[str, Any]:
    """The headers of a message refused from ``queue``: its own, plus why and by whom."""
    out = dict(headers or {})
    out.update(
        {
            DEAD_REASON_HEADER: reason,
            DEAD_DETAIL_HEADER: detail[:DEAD_DETAIL_CHARS],
            DEAD_BY_HEADER: by,
            DEAD_QUEUE_HEADER: queue,
        }
    )
    return out


def dead_letter(
    channel: Any, *, queue: str, body: bytes, properties: Any, headers: dict[str, Any]
) -> None:
    """Publish a refused message to the dead-letter exchange, as RabbitMQ would have, but
    with the reason in ``headers``. Task queues' messages also reach DEAD_TASKS_QUEUE.

    ``channel`` should be in confirm mode: the caller acks the original only after this
    returned, so a crash in between means a second dead letter, never none.
    """
    properties.headers = headers
    channel.basic_publish(
        exchange=DEAD_LETTER_EXCHANGE, routing_key=queue, body=body, properties=properties
    )
