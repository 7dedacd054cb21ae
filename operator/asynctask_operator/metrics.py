"""Prometheus metrics of the operator, served over HTTP when ``ASYNCTASK_METRICS_PORT`` is set.

One registry per :class:`OperatorMetrics` (tests run several operators in one process).
Exposed series:

* ``asynctask_operator_tasks_published_total{queue}``: task messages handed to RabbitMQ
  (first attempts and retries);
* ``asynctask_operator_phase_transitions_total{queue,phase}``: phases written to status;
* ``asynctask_operator_task_run_seconds{queue,phase}``: start to terminal phase, by outcome;
* ``asynctask_operator_task_wait_seconds{queue}``: queued to started (time in the queue);
* ``asynctask_operator_status_writes_total{result}``: status PATCHes (``ok``, ``gone``,
  ``rejected``): the API write budget, as the operator sees it;
* ``asynctask_operator_status_writes_unanswered_total{found}``: status writes that went
  out and got no answer (a timeout, a lost connection, a 504), by what a read of the task
  then found: ``applied`` (not written again) or ``missing`` (written again);
* ``asynctask_operator_status_messages_total{result}``: worker status messages
  (``applied``, ``coalesced``, ``ignored``, ``malformed``, ``orphaned``), and ``folded``: an
  applied message whose write was folded into the next one's (counted twice, so a sum of
  every result leaves ``folded`` out);
* ``asynctask_operator_dead_lettered_tasks_total{reason}``: dead-lettered task messages
  that ended a task, by reason: RabbitMQ's (``delivery_limit``...) or the refusing
  worker's (``NotJson``, ``TooDeep``, ``NoHandler``...; ``other`` for unknown ones);
* ``asynctask_operator_webhook_deliveries_total{outcome}``: webhook events ``delivered`` or
  ``failed`` (given up);
* ``asynctask_build_info{version}``: 1, labelled with the operator's version;
* ``asynctask_operator_tasks_tracked``, ``asynctask_operator_deadlines_pending``: what the
  operator holds in memory (tasks, and deadlines in its one scheduler);
* ``asynctask_operator_tasks_held``: tasks held for their ``spec.notBefore`` right now;
  ``asynctask_operator_tasks_scheduled_total`` and ``asynctask_operator_tasks_released_total``:
  tasks that were held when created, and held tasks queued at their due time;
* ``asynctask_operator_schedule_runs_total{outcome}``: AsyncTaskSchedule slots ``started``,
  ``skipped`` (Forbid) or ``missed``; ``asynctask_operator_schedule_lag_seconds``: slot time
  to its task's creation; ``asynctask_operator_schedules``: schedules held in memory.
* ``asynctask_operator_queue_held{queue,reason}``: tasks an AsyncQueue holds back, by the
  reason that holds the queue now; ``asynctask_operator_queue_in_flight{queue}``;
* ``asynctask_operator_queue_admitted_total{queue}``: tasks an AsyncQueue admitted (at once
  or from the held set); ``asynctask_operator_queue_decisions_total{queue,decision}``:
  admission decisions (``admitted``: at once, ``held``, ``released``: admitted when held).
* with the history archive (docs/history.md): ``asynctask_operator_archive_rows_total``,
  ``..._archive_batches_total``, ``..._archive_failures_total`` (batches that failed and are
  written again), ``..._archive_lag_seconds`` (a task's finish to its row written),
  ``..._archive_queue_depth`` (tasks waiting to be archived),
  ``..._archive_unarchived_deletions_total`` (TTL deletions that went ahead unarchived after
  the bounded wait), ``..._archive_lost_total`` (tasks deleted before they could be archived)
  and ``..._archive_partitions_dropped_total`` (retention).
* with large payloads (docs/payloads.md): ``asynctask_operator_payload_grants_total``
  (publishes that carried presigned URLs), ``..._payload_refused_total{reason}``
  (``RequestRefRefused``, ``PayloadStorageOff``, ``ResultRefRefused``),
  ``..._payload_objects_deleted_total{kind}`` (``request``, ``result``: with their deleted
  task), ``..._payload_sweep_deletions_total{kind}`` (orphans the sweep removed) and
  ``..._payload_store_errors_total`` (calls the store failed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from asynctask_operator.observers import Written
from asynctask_operator.status import parse_phase, seconds_between
from asynctask_worker._version import __version__
from asynctask_worker.metrics import MetricsServer

DURATION_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


class OperatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.build = Info("asynctask_build", "The running operator's version.", registry=r)
        self.build.info({"version": __version__})
        self._task_series(r)
        self._operator_series(r)

    def _task_series(self, r: CollectorRegistry) -> None:
        """What became of tasks: published, phases, timings."""
        self.published = Counter(
            "asynctask_operator_tasks_published",
            "Task messages handed to RabbitMQ (attempts).",
            ["queue"],
            registry=r,
        )
        self.publish_retries = Counter(
            "asynctask_operator_publish_retries",
            "Messages published again on a new connection because the old one was lost "
            "before RabbitMQ confirmed them: each may be in its queue twice.",
            registry=r,
        )
        self.transitions = Counter(
            "asynctask_operator_phase_transitions",
            "Phases written to AsyncTask status.",
            ["queue", "phase"],
            registry=r,
        )
        self.run_seconds = Histogram(
            "asynctask_operator_task_run_seconds",
            "From a worker's start to the terminal phase.",
            ["queue", "phase"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.wait_seconds = Histogram(
            "asynctask_operator_task_wait_seconds",
            "From queued to started by a worker.",
            ["queue"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )

    def _operator_series(self, r: CollectorRegistry) -> None:
        """The operator's own work: writes, messages, webhooks, what it holds."""
        self.writes = Counter(
            "asynctask_operator_status_writes",
            "Status writes (PATCH of the status subresource) by result.",
            ["result"],
            registry=r,
        )
        self.unanswered = Counter(
            "asynctask_operator_status_writes_unanswered",
            "Status writes that went out unanswered (a timeout, a lost connection, a 504), "
            "by what a read of the task then found: applied (not written again) or missing.",
            ["found"],
            registry=r,
        )
        self.records_folded = Counter(
            "asynctask_operator_records_folded",
            "New tasks whose Pending write (the record of their publish) was folded into "
            "their end: one status write instead of two (ASYNCTASK_PUBLISH_FOLD_SECONDS).",
            registry=r,
        )
        self.records_extended = Counter(
            "asynctask_operator_records_held_longer",
            "New tasks whose Pending write was held past its first window because the "
            "status writer was busy (ASYNCTASK_PUBLISH_FOLD_MAX_SECONDS): until it is "
            "written, kubectl shows such a task without a phase.",
            registry=r,
        )
        self.messages = Counter(
            "asynctask_operator_status_messages",
            "Worker status messages by what became of them.",
            ["result"],
            registry=r,
        )
        self.dead_lettered = Counter(
            "asynctask_operator_dead_lettered_tasks",
            "Dead-lettered task messages that ended a task.",
            ["reason"],
            registry=r,
        )
        self.webhooks = Counter(
            "asynctask_operator_webhook_deliveries",
            "Webhook events delivered or given up.",
            ["outcome"],
            registry=r,
        )
        self.tracked = Gauge(
            "asynctask_operator_tasks_tracked",
            "AsyncTasks the operator keeps in memory.",
            registry=r,
        )
        self.deadlines = Gauge(
            "asynctask_operator_deadlines_pending",
            "Deadlines waiting in the scheduler.",
            registry=r,
        )
        self._delay_series(r)
        self._schedule_series(r)
        self._queue_series(r)
        self._archive_series(r)
        self._payload_series(r)

    def _schedule_series(self, r: CollectorRegistry) -> None:
        """AsyncTaskSchedule runs: by outcome, and how late a slot's task was created."""
        self.schedule_runs = Counter(
            "asynctask_operator_schedule_runs",
            "Schedule slots by outcome: started (a task created), skipped (Forbid while "
            "one was active), missed (no operator acted in time).",
            ["outcome"],
            registry=r,
        )
        self.schedule_lag = Histogram(
            "asynctask_operator_schedule_lag_seconds",
            "From a slot's time to its task's creation (the create's answer).",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            registry=r,
        )
        self.schedules = Gauge(
            "asynctask_operator_schedules",
            "AsyncTaskSchedules the operator keeps in memory.",
            registry=r,
        )

    def _queue_series(self, r: CollectorRegistry) -> None:
        """Queues under an AsyncQueue: held, in flight, admission decisions."""
        self.queue_held = Gauge(
            "asynctask_operator_queue_held",
            "Tasks an AsyncQueue holds back, by the reason that holds the queue now.",
            ["queue", "reason"],
            registry=r,
        )
        self.queue_in_flight = Gauge(
            "asynctask_operator_queue_in_flight",
            "Tasks of a queue with an AsyncQueue published and not yet finished.",
            ["queue"],
            registry=r,
        )
        self.queue_admitted = Counter(
            "asynctask_operator_queue_admitted",
            "Tasks an AsyncQueue admitted (published), at once or after being held.",
            ["queue"],
            registry=r,
        )
        self.queue_decisions = Counter(
            "asynctask_operator_queue_decisions",
            "Admission decisions: admitted at once, held, or released from the held set.",
            ["queue", "decision"],
            registry=r,
        )

    def _delay_series(self, r: CollectorRegistry) -> None:
        """Tasks held for spec.notBefore."""
        self.held_now = Gauge(
            "asynctask_operator_tasks_held",
            "Tasks held until their spec.notBefore (not yet queued).",
            registry=r,
        )
        self.held = Counter(
            "asynctask_operator_tasks_scheduled",
            "Tasks held when created, until their spec.notBefore.",
            registry=r,
        )
        self.released = Counter(
            "asynctask_operator_tasks_released",
            "Held tasks queued when their spec.notBefore came.",
            registry=r,
        )

    def _archive_series(self, r: CollectorRegistry) -> None:
        """The history archive (zero without one)."""
        name = "asynctask_operator_archive_"
        self.archive_rows = Counter(name + "rows", "Rows written to the archive.", registry=r)
        self.archive_batches = Counter(name + "batches", "Batches written.", registry=r)
        self.archive_failures = Counter(
            name + "failures", "Batch writes that failed (written again).", registry=r
        )
        self.archive_lag = Histogram(
            name + "lag_seconds",
            "From a task's finish to its row written.",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.archive_depth = Gauge(
            name + "queue_depth", "Tasks waiting to be archived.", registry=r
        )
        self.archive_unarchived_deletions = Counter(
            name + "unarchived_deletions",
            "TTL deletions that went ahead before the task was archived (the wait ran out).",
            registry=r,
        )
        self.archive_lost = Counter(
            name + "lost", "Tasks deleted before they could be archived.", registry=r
        )
        self.archive_partitions_dropped = Counter(
            name + "partitions_dropped", "Daily partitions dropped by retention.", registry=r
        )

    def _payload_series(self, r: CollectorRegistry) -> None:
        """Large payloads in object storage (zero without it)."""
        name = "asynctask_operator_payload_"
        self.payload_grants = Counter(
            name + "grants", "Task messages published with presigned URLs.", registry=r
        )
        self.payload_refused = Counter(
            name + "refused", "Payload references refused, by reason.", ["reason"], registry=r
        )
        self.payload_deleted = Counter(
            name + "objects_deleted",
            "Objects deleted with their task, by kind (request, result).",
            ["kind"],
            registry=r,
        )
        self.payload_swept = Counter(
            name + "sweep_deletions",
            "Orphaned objects the sweep deleted, by kind (request, result).",
            ["kind"],
            registry=r,
        )
        self.payload_store_errors = Counter(
            name + "store_errors", "Calls to the object store that failed.", registry=r
        )

    def serve(self, port: int, address: str = "0.0.0.0") -> MetricsServer:
        return MetricsServer(self, port, address)

    def value(self, name: str, **labels: str) -> float:
        """A sample's current value (0 if absent): for tests and debugging."""
        found = self.registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    def watch_sizes(
        self,
        tracked: Callable[[], int],
        deadlines: Callable[[], int],
        held: Callable[[], int] = lambda: 0,
    ) -> None:
        self.tracked.set_function(lambda: float(tracked()))
        self.deadlines.set_function(lambda: float(deadlines()))
        self.held_now.set_function(lambda: float(held()))

    def status_written(self, written: Written) -> None:
        """An observer of the status writer: one write, and the phase change if any."""
        self.writes.labels("ok").inc()
        self.phase_written(
            written.spec.queue if written.spec else "", written.previous, written.status
        )

    def task_forgotten(self, uid: str) -> None:
        pass

    def unanswered_write(self, applied: bool) -> None:
        """A status write that went out unanswered, and what a read then found."""
        self.unanswered.labels("applied" if applied else "missing").inc()

    def phase_written(self, queue: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Count a phase change and, from the status timestamps, how long things took."""
        phase = parse_phase(after.get("phase"))
        if phase is None or (
            phase == before.get("phase") and after.get("attempts") == before.get("attempts")
        ):
            return
        self.transitions.labels(queue, phase.value).inc()
        started, queued = after.get("startTime"), after.get("queuedTime")
        if started and queued and started != before.get("startTime"):  # a start, even
            # one folded into the terminal write of a task that ran in under a write
            self.wait_seconds.labels(queue).observe(max(0.0, seconds_between(queued, started)))
        end = after.get("completionTime")
        begin = started or queued
        if phase.terminal and end and begin:
            self.run_seconds.labels(queue, phase.value).observe(
                max(0.0, seconds_between(begin, end))
            )
