"""What the conformance suite drives and reads: a conformance worker of either SDK as a
process (docs/conformance.md), and the suite's own RabbitMQ as the broker holds it.

Nothing here looks inside a worker: it is ready when the broker shows its consumers, and
what it did is read from the AsyncTask status (tests/e2e/tasks.py) and the queues.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pika

from asynctask_worker import topology
from asynctask_worker.messages import MAX_START_REPORT_SECONDS, TaskMessage, TaskRef, encode
from testbed import RabbitMQ, wait_until
from tests.e2e.system import REPO, Process

SDKS = ("python", "typescript")
TS_DIR = REPO / "worker-ts"

#: The queues of the handlers in docs/conformance.md, each served by the handler of its name.
MARK = "conformance.mark"
SHARED_QUEUES = (
    "conformance.echo",
    "conformance.fail",
    "conformance.crash",
    "conformance.progress",
    "conformance.sleep",
    "conformance.stubborn",
    "conformance.big",
    "conformance.digest",
    "conformance.blob",
)


#: How long a conformance worker retries a transfer while the store is down (the stored
#: payloads case waits it out once).
PAYLOAD_RETRY_SECONDS = 4


def command(sdk: str) -> list[str]:
    """How the suite starts the conformance worker of ``sdk`` (from the repository's root)."""
    if sdk == "python":
        return [sys.executable, "-m", "tests.conformance.python_worker"]
    return ["node", str(TS_DIR / "dist" / "conformance" / "worker.js")]


@dataclass
class Broker:
    """The suite's RabbitMQ (its default virtual host), read and written as a plain AMQP
    client and through the management API."""

    node: RabbitMQ

    @property
    def url(self) -> str:
        return self.node.url

    def _connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.URLParameters(self.url))

    def counts(self, queue: str) -> tuple[int, int]:
        """(ready messages, consumers) of a task queue, exact (a passive declare); (0, 0)
        while nobody declared it."""
        conn = self._connect()
        try:
            ok = conn.channel().queue_declare(topology.task_queue_name(queue), passive=True)
            return int(ok.method.message_count), int(ok.method.consumer_count)
        except pika.exceptions.ChannelClosedByBroker:
            return 0, 0
        finally:
            conn.close()

    def held(self, queue: str) -> int:
        """Messages in a task queue, ready or delivered and not acked yet (the management
        API's count: it lags a few seconds, so wait for a value rather than read one)."""
        info = self.node.queue("/", topology.task_queue_name(queue))
        return int(info["messages_ready"]) + int(info["messages_unacknowledged"])

    def ready(self, queue: str) -> int:
        return self.counts(queue)[0]

    def consumers(self, queue: str) -> int:
        return self.counts(queue)[1]

    def publish(
        self, queue: str, body: bytes, message_id: str, headers: dict[str, Any] | None = None
    ) -> None:
        """Publish to a task queue as the operator does (persistent, confirmed, mandatory)."""
        conn = self._connect()
        try:
            channel = conn.channel()
            channel.confirm_delivery()
            channel.basic_publish(
                "",
                topology.task_queue_name(queue),
                body,
                pika.BasicProperties(
                    content_type="application/json",
                    delivery_mode=2,
                    type="task",
                    message_id=message_id,
                    headers=headers,
                ),
                mandatory=True,
            )
        finally:
            conn.close()

    def publish_task(
        self, obj: dict[str, Any], queue: str, request: Any, timeout_seconds: int | None = None
    ) -> TaskMessage:
        """The task message of attempt 1 of the AsyncTask ``obj``, as the operator builds
        it, published to ``queue``: a duplicate of the operator's own, or one it never sent."""
        meta = obj["metadata"]
        ref = TaskRef(uid=meta["uid"], namespace=meta["namespace"], name=meta["name"])
        msg = TaskMessage(
            task=ref, queue=queue, request=request, attempt=1, timeout_seconds=timeout_seconds
        )
        self.publish(queue, encode(msg), msg.message_id, task_headers(ref, 1))
        return msg

    def dead_letters(self) -> list[tuple[str | None, dict[str, Any]]]:
        """(message id, headers) of every message in ``asynctask.dead-letter``; they stay
        there (read without an ack, returned when the connection closes)."""
        conn = self._connect()
        found: list[tuple[str | None, dict[str, Any]]] = []
        try:
            channel = conn.channel()
            while True:
                method, props, _body = channel.basic_get(topology.DEAD_LETTER_QUEUE)
                if method is None:
                    return found
                found.append((props.message_id, dict(props.headers or {})))
        finally:
            conn.close()


def task_headers(ref: TaskRef, attempt: int) -> dict[str, Any]:
    return {
        topology.TASK_UID_HEADER: ref.uid,
        topology.TASK_NAMESPACE_HEADER: ref.namespace,
        topology.TASK_NAME_HEADER: ref.name,
        topology.TASK_ATTEMPT_HEADER: attempt,
    }


#: The conformance workers' start window: the longest a worker may use.
START_REPORT_SECONDS = MAX_START_REPORT_SECONDS


class ConformanceWorker:
    """One conformance worker process of an SDK, serving ``queues`` of the suite's broker.

    Ready when every one of its queues has a consumer (the broker's count: nothing else
    serves them while it runs)."""

    def __init__(
        self,
        sdk: str,
        broker: Broker,
        queues: tuple[str, ...],
        logdir: Path,
        *,
        concurrency: int = 1,
        cancel_grace: float = 2,
        grace_period: float = 30,
    ) -> None:
        self.broker, self.queues = broker, queues
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCTASK_")}
        env.update(
            ASYNCTASK_WORKER_AMQP_URL=broker.url,
            ASYNCTASK_WORKER_QUEUES=",".join(queues),
            ASYNCTASK_WORKER_CONCURRENCY=str(concurrency),
            ASYNCTASK_WORKER_CANCEL_GRACE_SECONDS=str(cancel_grace),
            ASYNCTASK_WORKER_GRACE_PERIOD_SECONDS=str(grace_period),
            ASYNCTASK_WORKER_PAYLOAD_RETRY_SECONDS=str(PAYLOAD_RETRY_SECONDS),
            # The longest start window (docs/protocol.md): every case runs with starts held,
            # and a loaded machine cannot stretch a short task past it.
            ASYNCTASK_WORKER_START_REPORT_SECONDS=str(START_REPORT_SECONDS),
        )
        self.wait_gone()  # a worker of these queues before this one has let go of them
        self.process = Process(f"{sdk}-worker", command(sdk), env, logdir, self.serving)
        self.process.wait_ready(60)

    def serving(self) -> bool:
        return all(self.broker.consumers(q) > 0 for q in self.queues)

    def wait_gone(self) -> None:
        wait_until(
            f"no consumer on {self.queues}",
            lambda: all(self.broker.consumers(q) == 0 for q in self.queues),
            30,
        )

    def wait_serving(self, timeout: float = 90) -> None:
        self.process.wait_until("it consumes its queues again", self.serving, timeout)

    def kill(self) -> None:
        """SIGKILL: no goodbye; RabbitMQ returns what it held when the connection drops."""
        self.process.proc.send_signal(signal.SIGKILL)
        self.process.proc.wait(30)
        self.wait_gone()

    def terminate(self, timeout: float) -> int:
        """SIGTERM, then wait until it exited by itself (its drain); the exit code."""
        self.process.proc.send_signal(signal.SIGTERM)
        try:
            code = self.process.proc.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            raise AssertionError(f"the worker did not exit within {timeout}s of SIGTERM") from exc
        self.wait_gone()
        return code

    def restart(self) -> None:
        self.process.restart()
        self.process.wait_ready(60)

    def stop(self) -> None:
        self.process.stop()
        print(f"\n--- {self.process.name} log (tail) ---\n{self.process.text()[-3000:]}")


def pattern(size: int) -> bytes:
    """What ``conformance.blob`` returns for ``{"bytes": size}``: byte ``i`` is ``i % 251``."""
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def marks(path: Path) -> list[tuple[str, int]]:
    """The runs ``conformance.mark`` recorded in ``path``: (uid or name, attempt) each."""
    if not path.exists():
        return []
    lines = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(who, int(attempt)) for who, attempt in lines]


def runs_of(path: Path, obj: dict[str, Any]) -> list[int]:
    """The attempts recorded in ``path`` for the AsyncTask ``obj`` (by uid or by name)."""
    meta = obj["metadata"]
    return [attempt for who, attempt in marks(path) if who in (meta["uid"], meta["name"])]
