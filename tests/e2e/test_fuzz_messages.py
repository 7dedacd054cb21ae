"""Fuzz: over a thousand malformed messages into the status queue and a task queue, made
by mutating real ones, interleaved with real tasks. The operator and the worker stay
alive, every bad message is dead-lettered with the reason its consumer gave, and the real
tasks around them all succeed.

A private operator and worker on a virtual host of their own, so that everything in its
dead-letter queue comes from this test; the seed is fixed, so a failure can be replayed.
"""

from __future__ import annotations

import collections
import hashlib
import json
import random
import threading
from contextlib import closing
from typing import Any

import pika
import pytest

from asynctask_worker import topology
from testbed import ControlPlane, RabbitMQ, wait_until
from tests.e2e.fuzz_messages import Fuzzed, generate
from tests.e2e.private_system import QUEUE, fuzz_ns, fuzz_url, system
from tests.e2e.system import Process

__all__ = ["fuzz_ns", "fuzz_url", "system"]  # fixtures, used by name
from tests.e2e.tasks import create, status

pytestmark = pytest.mark.e2e

SEED = 14
STATUS_MESSAGES, TASK_MESSAGES, GOOD_TASKS = 600, 500, 40


def publish_all(url: str, batches: list[tuple[str, Fuzzed]]) -> None:
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
        ch = conn.channel()
        ch.confirm_delivery()
        for queue, msg in batches:
            ch.basic_publish(
                "",
                queue,
                msg.body,
                pika.BasicProperties(
                    message_id=msg.message_id,
                    headers=msg.headers,
                    delivery_mode=pika.DeliveryMode.Persistent,
                ),
                mandatory=True,
            )


def drain(url: str, queue: str) -> list[tuple[Any, bytes]]:
    got: list[tuple[Any, bytes]] = []
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
        ch = conn.channel()
        while True:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return got
            got.append((props, body))


def ready_count(url: str, queue: str) -> int:
    with closing(pika.BlockingConnection(pika.URLParameters(url))) as conn:
        return int(conn.channel().queue_declare(queue, passive=True).method.message_count)


def key(queue: str, body: bytes) -> tuple[str, str]:
    return queue, hashlib.sha256(body).hexdigest()


def fuzzed_messages(rng: random.Random, ns: str, task_queue: str) -> list[tuple[str, Fuzzed]]:
    """The bad status and task messages, with their queues, shuffled."""
    bad = [
        (topology.STATUS_QUEUE, m) for m in generate(rng, "status", ns, QUEUE, STATUS_MESSAGES)
    ] + [(task_queue, m) for m in generate(rng, "task", ns, QUEUE, TASK_MESSAGES)]
    rng.shuffle(bad)
    return bad


def unreadable_naming(cp: ControlPlane, ns: str, name: str) -> Fuzzed:
    """An unreadable task message that names a real task (created here, Pending on a queue
    nobody serves) in its headers, as the operator publishes them."""
    parked = create(cp, ns, name, queue="nobody-serves-this")
    ref = parked["metadata"]
    wait_until(f"{name} to be Pending", lambda: status(cp, ns, name).get("phase") == "Pending", 30)
    return Fuzzed(
        "names-a-real-task",
        b'{"v": 1, "kind": "task", "request": ' + b"[" * 500 + b"]" * 500 + b"}",
        "TooDeep",
        f"task:{ref['uid']}:1",
        {
            "asynctask-uid": ref["uid"],
            "asynctask-namespace": ns,
            "asynctask-name": name,
            "asynctask-attempt": 1,
        },
    )


def publish_among_real_tasks(
    cp: ControlPlane, ns: str, url: str, bad: list[tuple[str, Fuzzed]], names: list[str]
) -> None:
    """Publish ``bad`` in ten chunks while the tasks ``names`` are created: their task and
    status messages share the queues with the bad ones."""
    creator = threading.Thread(
        target=lambda: [
            create(cp, ns, n, queue=QUEUE, request={"i": i}) for i, n in enumerate(names)
        ]
    )
    creator.start()
    chunk = len(bad) // 10
    for start in range(0, len(bad), chunk):
        publish_all(url, bad[start : start + chunk])
    creator.join()


def check_dead_letters(url: str, bad: list[tuple[str, Fuzzed]]) -> None:
    """Each bad message in the dead-letter queue exactly once, with the reason its
    consumer gave, and by whom."""
    expected = collections.Counter(key(q, m.body) for q, m in bad)
    letters: list[tuple[Any, bytes]] = []

    def all_dead_lettered() -> bool:
        letters.extend(drain(url, topology.DEAD_LETTER_QUEUE))
        return len(letters) >= len(bad)

    wait_until("every bad message in the dead-letter queue", all_dead_lettered, 120, interval=1)
    reasons = {key(q, m.body): m.reason for q, m in bad}
    found: collections.Counter[tuple[str, str]] = collections.Counter()
    for props, body in letters:
        headers = props.headers or {}
        queue = headers.get(topology.DEAD_QUEUE_HEADER)
        k = key(str(queue), body)
        assert k in reasons, f"an unexpected dead letter from {queue}: {body[:100]!r}"
        assert headers.get(topology.DEAD_REASON_HEADER) == reasons[k]
        assert headers.get(topology.DEAD_DETAIL_HEADER)
        assert headers.get(topology.DEAD_BY_HEADER) == (
            "operator" if queue == topology.STATUS_QUEUE else headers[topology.DEAD_BY_HEADER]
        )
        found[k] += 1
    assert found == expected


def check_clean_stop(operator: Process, worker: Process, url: str, task_queue: str) -> None:
    """Nothing left behind: both alive and ready, then stopped; no ERROR or traceback in
    their logs; the status queue and the dead tasks (which the operator reads to end tasks)
    empty once their consumers stopped (unacked would come back)."""
    assert operator.alive() and worker.alive()
    assert (
        operator.ready is not None
        and operator.ready()
        and worker.ready is not None
        and worker.ready()
    )
    operator.stop()
    worker.stop()
    for proc in (operator, worker):  # refusals are WARNINGs: nothing went wrong inside
        assert "Traceback" not in proc.text() and " ERROR " not in proc.text(), proc.name
    for queue in (topology.STATUS_QUEUE, topology.DEAD_TASKS_QUEUE, task_queue):
        assert ready_count(url, queue) == 0, queue


def print_table(bad: list[tuple[str, Fuzzed]]) -> None:
    table = collections.Counter((q.split(".")[-1], m.category, m.reason) for q, m in bad)
    print(
        f"\nfuzzed {len(bad)} bad messages (seed {SEED}) among {GOOD_TASKS} real tasks, "
        f"all {GOOD_TASKS} Succeeded; dead-lettered with x-asynctask-dead-reason:"
    )
    for (queue, category, reason), n in sorted(table.items()):
        print(f"  {queue:7} {category:16} {reason:15} {n:4}")
    props_kinds = collections.Counter(m.props for _, m in bad)
    print(f"  properties: {json.dumps(dict(props_kinds))}")


def test_malformed_messages_are_dead_lettered_with_why_and_real_tasks_go_on(
    control_plane: ControlPlane,
    rabbitmq: RabbitMQ,
    fuzz_ns: str,
    fuzz_url: str,
    system: tuple[Process, Process],
) -> None:
    operator, worker = system
    task_queue = topology.task_queue_name(QUEUE)
    bad = fuzzed_messages(random.Random(SEED), fuzz_ns, task_queue)
    # One unreadable message names a real task in its headers: the worker refuses it, and
    # the operator ends that task in Error saying why, although neither could read the body.
    bad.insert(len(bad) // 2, (task_queue, unreadable_naming(control_plane, fuzz_ns, "parked")))
    names = [f"good-{i}" for i in range(GOOD_TASKS)]
    publish_among_real_tasks(control_plane, fuzz_ns, fuzz_url, bad, names)

    wait_until(
        "every good task to succeed",
        lambda: all(status(control_plane, fuzz_ns, n).get("phase") == "Succeeded" for n in names),
        120,
        interval=1,
    )
    ended = wait_until(
        "parked to end",
        lambda: status(control_plane, fuzz_ns, "parked").get("phase") == "Error",
        60,
    )
    error = status(control_plane, fuzz_ns, "parked")["error"]
    assert error["reason"] == "MalformedTaskMessage" and "TooDeep" in error["message"]
    print(
        f"\na real task named by an unreadable message: Error {error['reason']} "
        f"after {ended:.1f}s: {error['message'][:160]}"
    )
    check_dead_letters(fuzz_url, bad)
    check_clean_stop(operator, worker, fuzz_url, task_queue)
    print_table(bad)
