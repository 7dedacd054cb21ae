"""Prometheus metrics of one worker, served over HTTP when ``metrics_port`` is set.

Each worker has its own registry (several workers in one process, as in tests, do not
collide). Exposed series:

* ``asynctask_worker_tasks_started_total{queue}``: handlers started;
* ``asynctask_worker_tasks_finished_total{queue,outcome}``: terminal statuses reported,
  including tasks revoked before they started (``outcome="Cancelled"``);
* ``asynctask_worker_tasks_revoked_before_start_total{queue}``: of those, never run;
* ``asynctask_worker_task_duration_seconds{queue,outcome}``: handler run time;
* ``asynctask_worker_tasks_in_flight{queue}``: handlers running now;
* ``asynctask_worker_abandoned_threads``: thread-mode handlers that ignored a hard stop
  and still run in the background;
* ``asynctask_worker_payload_bytes_total{queue,direction}``: bytes of stored requests
  downloaded and results uploaded (``direction``: ``download``, ``upload``);
* ``asynctask_worker_payload_retries_total{queue,direction}``: transfers tried again after
  the object store failed (unreachable, 5xx);
* ``asynctask_worker_broker_connections_total``: connections made (reconnects show here);
* ``asynctask_worker_ready``: 1 while the worker consumes its task queues, 0 while it
  connects, catches up with the control stream or reconnects (a readiness signal).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from asynctask_worker.messages import Phase

DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.started = Counter(
            "asynctask_worker_tasks_started", "Task handlers started.", ["queue"], registry=r
        )
        self.finished = Counter(
            "asynctask_worker_tasks_finished",
            "Task attempts ended, by outcome (terminal phase).",
            ["queue", "outcome"],
            registry=r,
        )
        self.revoked = Counter(
            "asynctask_worker_tasks_revoked_before_start",
            "Tasks acked without running: cancelled while queued.",
            ["queue"],
            registry=r,
        )
        self.duration = Histogram(
            "asynctask_worker_task_duration_seconds",
            "How long handlers ran, by outcome.",
            ["queue", "outcome"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "asynctask_worker_tasks_in_flight", "Handlers running now.", ["queue"], registry=r
        )
        self.abandoned = Gauge(
            "asynctask_worker_abandoned_threads",
            "Thread-mode handlers past their hard stop, still running.",
            registry=r,
        )
        self.dead_lettered = Counter(
            "asynctask_worker_messages_dead_lettered",
            "Task messages refused (dead-lettered), by reason.",
            ["reason"],
            registry=r,
        )
        self.payload_bytes = Counter(
            "asynctask_worker_payload_bytes",
            "Bytes moved to and from object storage (stored requests and results).",
            ["queue", "direction"],
            registry=r,
        )
        self.payload_retries = Counter(
            "asynctask_worker_payload_retries",
            "Transfers to or from object storage tried again after the store failed.",
            ["queue", "direction"],
            registry=r,
        )
        self.connections = Counter(
            "asynctask_worker_broker_connections",
            "Connections made to RabbitMQ by the consumer.",
            registry=r,
        )
        self.ready = Gauge(
            "asynctask_worker_ready",
            "1 while consuming task queues; 0 while connecting or reconnecting.",
            registry=r,
        )
        self._queue_series: dict[str, tuple[Any, Any]] = {}
        self._outcome_series: dict[tuple[str, Phase], tuple[Any, Any]] = {}

    def task_started(self, queue: str) -> None:
        started, in_flight = self._of_queue(queue)
        started.inc()
        in_flight.inc()

    def task_finished(self, queue: str, phase: Phase, seconds: float) -> None:
        self._of_queue(queue)[1].dec()
        finished, duration = self._of_outcome(queue, phase)
        finished.inc()
        duration.observe(seconds)

    # A task's series, looked up once (``labels()`` builds and locks on every call).

    def _of_queue(self, queue: str) -> tuple[Any, Any]:
        series = self._queue_series.get(queue)
        if series is None:
            series = self._queue_series[queue] = (
                self.started.labels(queue),
                self.in_flight.labels(queue),
            )
        return series

    def _of_outcome(self, queue: str, phase: Phase) -> tuple[Any, Any]:
        series = self._outcome_series.get((queue, phase))
        if series is None:
            series = self._outcome_series[(queue, phase)] = (
                self.finished.labels(queue, phase.value),
                self.duration.labels(queue, phase.value),
            )
        return series

    def payloads_moved(
        self, queue: str, downloaded: int, uploaded: int, download_retries: int, upload_retries: int
    ) -> None:
        for direction, moved, retries in (
            ("download", downloaded, download_retries),
            ("upload", uploaded, upload_retries),
        ):
            self.payload_bytes.labels(queue, direction).inc(moved)
            self.payload_retries.labels(queue, direction).inc(retries)

    def task_revoked(self, queue: str, phase: Phase) -> None:
        self.revoked.labels(queue).inc()
        self.finished.labels(queue, phase.value).inc()

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 if absent): for tests and debugging."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def serve(self, port: int, address: str = "0.0.0.0") -> MetricsServer:
        return MetricsServer(self, port, address)


class HasRegistry(Protocol):
    registry: CollectorRegistry


class MetricsServer:
    """The ``/metrics`` HTTP endpoint (prometheus_client's threaded WSGI server) of a set of
    metrics: a worker's, or the operator's."""

    def __init__(self, metrics: HasRegistry, port: int, address: str) -> None:
        self._server: Any
        self._server, self._thread = start_http_server(port, address, registry=metrics.registry)
        self.port = int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if isinstance(self._thread, threading.Thread):
            self._thread.join(5)
