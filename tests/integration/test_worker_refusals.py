"""A task message a worker cannot run is dead-lettered with why, and the worker goes on."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pika
import pytest

from asynctask_worker import Phase, topology
from asynctask_worker.messages import CONTENT_TYPE, TaskMessage, TaskRef, encode
from tests.integration.worker_harness import BrokerClient, running_worker

pytestmark = pytest.mark.integration


def dead_letters(url: str, queue: str, n: int, timeout: float = 30) -> list[tuple[Any, bytes]]:
    got: list[tuple[Any, bytes]] = []
    deadline = time.monotonic() + timeout
    with pika.BlockingConnection(pika.URLParameters(url)) as conn:
        ch = conn.channel()
        while len(got) < n and time.monotonic() < deadline:
            method, props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                time.sleep(0.05)
                continue
            got.append((props, body))
    assert len(got) == n, f"{len(got)} of {n} dead letters arrived in {queue}"
    return got


def test_unreadable_task_messages_are_dead_lettered_with_their_reason(
    url: str, broker: BrokerClient, tmp_path: Path
) -> None:
    ref = TaskRef(uid="d1", namespace="it", name="deep")
    deep = (
        b'{"v": 1, "kind": "task", "queue": "it-run", "request": '
        + b"[" * 300
        + b"]" * 300
        + b', "task": {"uid": "d1", "namespace": "it", "name": "deep"}}'
    )
    good = json.loads(encode(TaskMessage(task=ref, queue="it-run")))
    cases = {
        "TooDeep": deep,
        "NotUtf8": b"\xff\xfe" + encode(TaskMessage(task=ref, queue="it-run")),
        "UnknownVersion": json.dumps({**good, "v": 7}).encode(),
        "NoHandler": encode(TaskMessage(task=ref, queue="nobody-serves-this")),
    }
    with running_worker(url) as worker:
        ch = broker._channel()
        for reason, body in cases.items():
            ch.basic_publish(
                "",
                topology.task_queue_name("it-run"),
                body,
                pika.BasicProperties(
                    content_type=CONTENT_TYPE,
                    message_id=f"task:d1:{reason}",
                    headers={
                        "asynctask-uid": "d1",
                        "asynctask-namespace": "it",
                        "asynctask-name": "deep",
                        "asynctask-attempt": 1,
                    },
                ),
            )
        # A good task after them still runs: the worker is alive and consuming.
        after = broker.publish_task("it-run", {"dir": str(tmp_path)})
        assert broker.terminal(after).phase is Phase.SUCCEEDED
        refused = worker.metrics.value
    for queue in (topology.DEAD_TASKS_QUEUE, topology.DEAD_LETTER_QUEUE):
        letters = dead_letters(url, queue, len(cases))
        by_id = {props.message_id: props.headers for props, _ in letters}
        for reason in cases:
            headers = by_id[f"task:d1:{reason}"]
            assert headers[topology.DEAD_REASON_HEADER] == reason
            assert headers[topology.DEAD_DETAIL_HEADER]
            assert headers[topology.DEAD_BY_HEADER].startswith("worker ")
            assert headers[topology.DEAD_QUEUE_HEADER] == topology.task_queue_name("it-run")
            assert headers["asynctask-uid"] == "d1"  # the task is still named
    for reason in cases:
        assert refused("asynctask_worker_messages_dead_lettered_total", reason=reason) == 1
    assert broker.ready("it-run") == 0
