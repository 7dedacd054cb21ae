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
    channel.queue_declare(CONTROL_STREAM, durable=True, arguments={
        "x-queue-type": "stream", "x-max-age": CONTROL_RETENTION})
    channel.queue_bind(CONTROL_STREAM, CONTROL_EXCHANGE)


def declare_all(channel: Any, queues: list[str] | tuple[str, ...] = ()) -> None:
    """Everything one side needs: dead-lettering, status, control and the task queues."""
    declare_dead_letter(channel)
    declare_status_queue(channel)
    declare_control_exchange(channel)
    for queue in queues:
        declare_task_queue(channel, queue)
