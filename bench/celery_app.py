"""The Celery side of ``throughput.py burst --celery``: a no-op task, with the guarantees
AsyncTask gives its messages (a durable quorum queue, persistent messages, publisher
confirms, acks after the task ran) and results over RabbitMQ (the rpc backend).

    BENCH_AMQP_URL=amqp://... celery -A celery_app worker --pool threads --concurrency 8
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from kombu import Queue

QUEUE = "celery-bench"

app = Celery("celery_app", broker=os.environ.get("BENCH_AMQP_URL", ""), backend="rpc://")
app.conf.update(
    task_acks_late=True,
    task_default_queue=QUEUE,
    task_queues=[Queue(QUEUE, durable=True, queue_arguments={"x-queue-type": "quorum"})],
    task_default_delivery_mode="persistent",
    broker_transport_options={"confirm_publish": True},
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
)


@app.task(name="noop")
def noop(n: int) -> dict[str, Any]:
    return {"greeting": "Hello, world!", "n": n}


def main() -> None:
    """The client: send ``--tasks`` no-op tasks at once from ``--clients`` threads, wait for
    every result; print the timings as one JSON line."""
    import argparse
    import json
    import time
    from concurrent.futures import ThreadPoolExecutor

    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--clients", type=int, default=16)
    args = parser.parse_args()
    noop.delay(-1).get(timeout=120)  # the worker is up
    start = time.monotonic()
    with ThreadPoolExecutor(args.clients) as pool:
        results = list(pool.map(noop.delay, range(args.tasks)))
    sent = time.monotonic() - start
    for done, result in enumerate(results, 1):
        result.get(timeout=300)
        if done % 100 == 0:
            print(f"  {done}/{args.tasks} results after {time.monotonic() - start:.1f}s")
    print(json.dumps({"sent": sent, "took": time.monotonic() - start}), flush=True)


if __name__ == "__main__":
    main()
