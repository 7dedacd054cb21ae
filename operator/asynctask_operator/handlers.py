"""kopf registration, and nothing else: each handler calls into the modules that own the work.

Only ``@kopf.on.event`` is used for AsyncTask objects: it costs no API writes of kopf's own
(no finalizer, no last-handled annotation, no progress annotations), which keeps a task
within its budget of three status writes. Idempotence comes from the status itself: an
object without ``status.phase`` has not been queued yet.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from asynctask_operator.broker import Broker, Delivery
from asynctask_operator.kube import Kube
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.scaling import Autoscaler
from asynctask_operator.settings import GROUP, PLURAL, VERSION, OperatorSettings
from asynctask_operator.tracking import Tracker
from asynctask_operator.webhooks import WebhookDispatcher

log = logging.getLogger("asynctask.operator")


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = OperatorSettings()
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    kube = Kube(config.api_workers)
    broker = Broker(config.amqp_url, prefetch=config.status_prefetch,
                    heartbeat=config.heartbeat_seconds,
                    reconnect_max_delay=config.reconnect_max_delay_seconds)
    inbox: asyncio.Queue[Delivery] = asyncio.Queue()
    broker.start_consuming(asyncio.get_running_loop(), inbox)
    webhooks = WebhookDispatcher(config, load_secret=kube.read_secret_key)
    metrics = OperatorMetrics()
    tracker = Tracker(config, kube, broker, webhooks=webhooks, metrics=metrics)
    memo.metrics_server = (None if config.metrics_port is None else
                           metrics.serve(config.metrics_port, config.metrics_address))
    if memo.metrics_server is not None:
        log.info("serving metrics on %s:%d", config.metrics_address, memo.metrics_server.port)
    webhooks.on_result = tracker.webhook_result
    memo.webhooks = webhooks
    memo.kube, memo.broker, memo.tracker = kube, broker, tracker
    memo.consumer = asyncio.create_task(tracker.consume(inbox), name="asynctask-status")
    memo.scheduler = asyncio.create_task(tracker.deadlines.run(), name="asynctask-deadlines")
    memo.scaler = Autoscaler(config).start() if config.autoscaling_enabled else None


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    if memo.get("scaler") is not None:
        await memo.scaler.stop()
    if memo.get("metrics_server") is not None:
        memo.metrics_server.close()
    if "consumer" in memo:
        memo.consumer.cancel()
        memo.scheduler.cancel()
        await memo.webhooks.close()
        memo.broker.stop()
        await asyncio.to_thread(memo.broker.join, 10)
        memo.kube.close()


@kopf.on.probe(id="broker")
def broker_connected(memo: kopf.Memo, **_: Any) -> bool:
    return bool(memo.broker.connected.is_set())


@kopf.on.event(GROUP, VERSION, PLURAL)
async def task_event(type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    tracker: Tracker = memo.tracker
    if type == "DELETED":
        await tracker.deleted(dict(body))
        return
    await tracker.observe(dict(body))
