"""The composition root: every object of the operator is built, started and stopped here.

:class:`Operator` wires the parts once, in dependency order, with each part given only what
it needs (its group of :class:`settings.Config`, its collaborators): nothing is assigned
after construction, and nothing re-reads the command line. Data flows one way round the
only loop there is: a status write notifies the webhook dispatcher (an observer), whose
outcomes come back through a queue that the operator drains into the next status write.

kopf is not imported here: :mod:`handlers` registers thin handlers that call into the one
:class:`Operator` object kept in kopf's memo (:class:`OperatorMemo`). The watch of
AsyncTasks is the operator's own (:class:`task_watch.TaskWatch`), started with the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from asynctask_operator.apiserver.apiclient import ApiClient, load_configuration
from asynctask_operator.apiserver.kube import Kube
from asynctask_operator.apiserver.schedule_calls import ScheduleCalls
from asynctask_operator.archiving import Archiver
from asynctask_operator.broker import Broker
from asynctask_operator.deadlines import Kind
from asynctask_operator.inbox import StatusInbox
from asynctask_operator.kube_events import EventRecorder
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.observers import WebhookOutcome
from asynctask_operator.outage import Outage, PatientApi
from asynctask_operator.outcomes import WebhookOutcomes
from asynctask_operator.payloads.leader import PayloadWork, open_store
from asynctask_operator.payloads.objects import PayloadObjects
from asynctask_operator.ports import (
    ArchiveStore,
    Delivery,
    OperatorApi,
    PayloadStore,
    TaskBroker,
)
from asynctask_operator.queue_watch import QueueWatch
from asynctask_operator.queues.gate import QueueGate
from asynctask_operator.record_hold import RecordHold
from asynctask_operator.scaling import Autoscaler
from asynctask_operator.schedules.controller import ScheduleController
from asynctask_operator.schedules.watch import ScheduleWatch
from asynctask_operator.settings import Config
from asynctask_operator.task_watch import TaskWatch, served
from asynctask_operator.tasks import TaskTable
from asynctask_operator.timers import Deadlines
from asynctask_operator.tracking import SUBMITTERS, Tracker
from asynctask_operator.webhooks import Resolve, WebhookDispatcher, system_resolve
from asynctask_operator.writer import StatusWriter
from asynctask_worker.messages import TaskRef
from asynctask_worker.metrics import MetricsServer

if TYPE_CHECKING:
    from asynctask_operator.archive.store import PostgresArchive
    from asynctask_operator.leader.leadership import Campaign

log = logging.getLogger("asynctask.operator")

#: How many admitted held tasks are published at once (each a publish and a status write).
RELEASERS = 16


@dataclass
class TaskLogic:
    """Everything that acts on tasks, wired; the edges (Kubernetes, RabbitMQ) are given."""

    table: TaskTable
    timers: Deadlines
    events: EventRecorder
    webhooks: WebhookDispatcher
    writer: StatusWriter
    tracker: Tracker
    inbox: StatusInbox
    outcomes: asyncio.Queue[tuple[TaskRef, WebhookOutcome]]
    webhook_outcomes: WebhookOutcomes
    outage: Outage
    gate: QueueGate
    payloads: PayloadObjects
    archiver: Archiver | None = None

    @classmethod
    def wire(
        cls,
        config: Config,
        api: OperatorApi,
        broker: TaskBroker,
        metrics: OperatorMetrics,
        *,
        resolve: Resolve = system_resolve,
        outage: Outage | None = None,
        queues: bool = False,
        archive: ArchiveStore | None = None,
        store: PayloadStore | None = None,
    ) -> TaskLogic:
        """Wire the logic on ``api``, whose calls then wait out an apiserver outage (told by
        ``outage``, the process's one if given). With ``queues``, the queue gate waits until
        the AsyncQueues and the tasks were listed (the operator watches both); with
        ``archive``, an :class:`Archiver` writes terminal tasks to it and TTL deletions wait
        for it; with ``store`` (and ``config.payloads`` set), large payloads are on."""
        lifecycle = config.lifecycle
        outage = Outage() if outage is None else outage
        api = PatientApi(api, outage, metrics.unanswered_write)
        events = EventRecorder(api, lifecycle.events)
        webhooks, outcomes = _webhooks(config, api, resolve)
        table = TaskTable(api)
        timers = Deadlines()
        gate = QueueGate(metrics, wait_for_sync=queues)
        # Observers run in this order after each write, as the inline calls they replace did.
        writer = StatusWriter(
            api,
            table,
            metrics,
            [metrics, webhooks, events, timers, gate],
            progress_interval_seconds=lifecycle.progress_patch_interval_seconds,
            hold=RecordHold(lifecycle.publish_fold_seconds, lifecycle.publish_fold_max_seconds),
        )
        archiver = None if archive is None else _archiver(config, archive, api, metrics, timers)
        payloads = PayloadObjects(config.payloads, store, metrics, keep_results=archive is not None)
        tracker = Tracker(
            lifecycle,
            table,
            writer,
            api,
            broker,
            timers,
            metrics,
            gate,
            archive=archiver,
            payloads=payloads,
        )
        inbox = StatusInbox(
            table,
            writer,
            broker,
            events,
            metrics,
            retry_backoff_cap_seconds=lifecycle.retry_backoff_cap_seconds,
            fold_window_seconds=lifecycle.fold_window_seconds,
            payloads=payloads,
        )
        tracker.flush_status = inbox.flush
        metrics.watch_sizes(
            lambda: len(table), lambda: len(timers), lambda: timers.count(Kind.NOT_BEFORE)
        )
        return cls(
            table=table,
            timers=timers,
            events=events,
            webhooks=webhooks,
            writer=writer,
            tracker=tracker,
            inbox=inbox,
            outcomes=outcomes,
            webhook_outcomes=WebhookOutcomes(table, writer, metrics),
            outage=outage,
            gate=gate,
            payloads=payloads,
            archiver=archiver,
        )


def _archiver(
    config: Config,
    archive: ArchiveStore,
    api: PatientApi,
    metrics: OperatorMetrics,
    timers: Deadlines,
) -> Archiver:
    """The archiver of terminal tasks; a TTL deletion it held is tried again once archived."""
    archiver = Archiver(config.archive, archive, api, metrics)
    archiver.on_archived = lambda uid: timers.set(uid, Kind.TTL, time.time())
    return archiver


def _webhooks(
    config: Config, api: PatientApi, resolve: Resolve
) -> tuple[WebhookDispatcher, asyncio.Queue[tuple[TaskRef, WebhookOutcome]]]:
    """The webhook dispatcher, and the queue of its outcomes (for :class:`WebhookOutcomes`)."""
    outcomes: asyncio.Queue[tuple[TaskRef, WebhookOutcome]] = asyncio.Queue()
    dispatcher = WebhookDispatcher(
        config.webhook,
        load_secret=api.read_secret_key,
        on_outcome=lambda ref, outcome: outcomes.put_nowait((ref, outcome)),
        resolve=resolve,
    )
    return dispatcher, outcomes


class Operator:
    def __init__(self, config: Config, namespaces: Sequence[str] = ()) -> None:
        """Build every part (no connection is made and no task started yet)."""
        self.config = config
        # The process's one apiserver client (the Lease's too: see handlers), its
        # configuration loaded once; calls have their own connections, apart from watches.
        self.client = OperatorApiClient(load_configuration(), connections=config.kube.api_workers)
        self.kube = Kube(self.client)
        self.outage = Outage()
        broker = config.broker
        self.metrics = OperatorMetrics()
        self.broker = Broker(
            broker.amqp_url,
            prefetch=broker.status_prefetch,
            publishers=broker.publishers,
            heartbeat=broker.heartbeat_seconds,
            reconnect_max_delay=broker.reconnect_max_delay_seconds,
            on_retry=self.metrics.publish_retries.inc,
        )
        self.archive = open_archive(config)
        self.store = open_store(config.payloads)
        self.logic = TaskLogic.wire(
            config,
            self.kube,
            self.broker,
            self.metrics,
            outage=self.outage,
            queues=True,
            archive=self.archive,
            store=self.store,
        )
        table = self.logic.table
        self.watch = TaskWatch(
            self.client,
            namespaces,
            self.task_event,
            known=lambda: ((t.uid, t.namespace, t.name) for t in table),
            outage=self.outage,
        )
        # AsyncTaskSchedules: their own watch (schedules, and tasks labelled with one)
        self.schedules = ScheduleController(
            ScheduleCalls(self.client), self.logic.events, self.metrics
        )
        self.schedule_watch = ScheduleWatch(
            self.client, namespaces, self.schedules, outage=self.outage
        )
        self.queues = QueueWatch(
            self.client,
            self.kube,
            self.broker,
            self.logic.gate,
            self.metrics,
            outage=self.outage,
            writes=config.lifecycle.queue_status,
        )
        self.scaler = (
            Autoscaler(config.scaling, broker.amqp_url, self.kube, namespaces, self.outage)
            if config.scaling.autoscaling_enabled
            else None
        )
        self.payload_work = PayloadWork.compose(
            self.logic.payloads,
            lambda: iter(table),
            self.metrics,
            serves=served(namespaces),
            archive=self.archive,
        )
        self.metrics_server: MetricsServer | None = None
        self._loops: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Connect to RabbitMQ, serve metrics, and start the operator's loops."""
        deliveries: asyncio.Queue[Delivery] = asyncio.Queue()
        self.broker.start_consuming(asyncio.get_running_loop(), deliveries)
        metrics = self.config.metrics
        if metrics.port is not None:
            self.metrics_server = self.metrics.serve(metrics.port, metrics.address)
            log.info("serving metrics on %s:%d", metrics.address, self.metrics_server.port)
        logic = self.logic
        self._loops = [
            asyncio.create_task(logic.inbox.consume(deliveries), name="asynctask-status"),
            asyncio.create_task(self.watch.run(), name="asynctask-watch"),
            asyncio.create_task(logic.timers.run(logic.tracker.fire), name="asynctask-deadlines"),
            asyncio.create_task(
                logic.webhook_outcomes.consume(logic.outcomes), name="asynctask-webhook-outcomes"
            ),
            asyncio.create_task(self.schedule_watch.run(), name="asynctask-schedule-watch"),
            asyncio.create_task(self.schedules.run(), name="asynctask-schedules"),
            *(
                asyncio.create_task(logic.tracker.submitting(), name=f"asynctask-submit-{i}")
                for i in range(SUBMITTERS)
            ),
            *self._queue_loops(),
        ]
        if self.payload_work is not None:
            self._loops += self.payload_work.start(self._tasks_handled)
        if logic.archiver is not None:
            self._loops += [
                asyncio.create_task(self._archive(logic.archiver), name="asynctask-archive"),
            ]
        if self.scaler is not None:
            self.scaler.start()

    def _queue_loops(self) -> list[asyncio.Task[None]]:
        """AsyncQueues: their watch and status, the gate's admissions, the publishers of
        admitted tasks, and the gate told once every task was listed and handled."""
        logic = self.logic

        async def tasks_synced() -> None:
            await self._tasks_handled()
            logic.gate.synced("tasks")

        return [
            asyncio.create_task(self.queues.run(), name="asynctask-queues"),
            asyncio.create_task(logic.gate.run(), name="asynctask-admission"),
            asyncio.create_task(tasks_synced(), name="asynctask-queues-synced"),
            *(
                asyncio.create_task(logic.tracker.releasing(), name=f"asynctask-release-{i}")
                for i in range(RELEASERS)
            ),
        ]

    async def _tasks_handled(self) -> None:
        """Every task was listed and its events handled."""
        await self.watch.synced.wait()
        await self.watch.join()

    async def _archive(self, archiver: Archiver) -> None:
        """Open the archive's pool (without waiting for PostgreSQL: the writes wait and
        retry), then write batches and keep the partitions."""
        assert self.archive is not None
        await self.archive.start()
        await asyncio.gather(archiver.run(), archiver.maintain())

    async def stop(self) -> None:
        if self._loops:
            await self.logic.writer.record_all_within()
        if self.scaler is not None:
            await self.scaler.stop()
        if self.metrics_server is not None:
            self.metrics_server.close()
        for loop in self._loops:
            loop.cancel()
        await self.logic.tracker.stop()
        self.watch.stop()
        await self.schedules.stop()
        await self.logic.webhooks.close()
        if self.archive is not None:
            await self.archive.close()
        self.broker.stop()
        await asyncio.to_thread(self.broker.join, 10)

    async def close(self) -> None:
        """Close the apiserver client: after :meth:`stop`, and after the Lease is released."""
        await self.client.close()

    # what the watch hands on -----------------------------------------------------------

    async def task_event(self, event_type: str, body: dict[str, Any]) -> None:
        if self.logic.archiver is not None:
            self.logic.archiver.offer(event_type, body)
        if event_type == "DELETED":
            await self.logic.tracker.deleted(body)
        else:
            await self.logic.tracker.observe(body, defer=True)

    @property
    def started(self) -> bool:
        """:meth:`start` was called (a standby's operator is built, never started)."""
        return bool(self._loops)

    async def broker_connected(self, wait: float = 0.0) -> bool:
        """Connected to RabbitMQ, or connected within ``wait`` seconds."""
        if self.broker.connected.is_set() or wait <= 0:
            return self.broker.connected.is_set()
        return await asyncio.to_thread(self.broker.connected.wait, wait)


def open_archive(config: Config) -> PostgresArchive | None:
    """The history archive's store when ``ASYNCTASK_ARCHIVE_URL`` is set (psycopg is
    imported only then), else None."""
    settings = config.archive
    if not settings.enabled or settings.url is None:
        return None
    from asynctask_operator.archive.store import PostgresArchive

    return PostgresArchive(settings.url, pool_size=settings.pool_size)


class OperatorApiClient(ApiClient):
    user_agent = "asynctask-operator"


@dataclass
class OperatorMemo:
    """kopf's memo: the namespaces and the Lease (``--peering``) from the command line, the
    one :class:`Operator`, and with a Lease, the election."""

    namespaces: list[str] = field(default_factory=list)
    peering: str | None = None
    operator: Operator | None = None
    campaign: Campaign | None = None

    def running(self) -> Operator:
        if self.operator is None:
            raise RuntimeError("the operator has not started")
        return self.operator
