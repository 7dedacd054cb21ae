"""kopf registration, and nothing else: each handler is one call into :class:`app.Operator`.

Only ``@kopf.on.event`` is used for AsyncTask objects: it costs no API writes of kopf's own
(no finalizer, no last-handled annotation, no progress annotations), which keeps a task
within its budget of three status writes. Idempotence comes from the status itself: an
object without ``status.phase`` has not been queued yet.

With ``--peering NAME`` the whole operator waits for leadership of the Lease NAME
(:mod:`leadership`): the startup handler builds it but starts it only once elected, and
until then the AsyncTask events kopf hands over are kept by a :class:`standby.Gate`.
"""

from __future__ import annotations

from typing import Any

import kopf

from asynctask_operator import kopf_settings, leadership
from asynctask_operator.app import Operator, OperatorMemo
from asynctask_operator.resource import GROUP, PLURAL, VERSION
from asynctask_operator.settings import Config
from asynctask_operator.standby import Gate


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: OperatorMemo, **_: Any) -> None:
    kopf_settings.configure(settings)
    config = Config()
    operator = memo.operator = Operator(config, memo.namespaces)
    if memo.peering is None:
        operator.start()
        return
    gate = memo.gate = Gate()

    def elected() -> None:
        operator.start()
        gate.start(operator.task_event)

    lock = leadership.LeaseLock(
        leadership.lease_namespace(), memo.peering, timeout=config.lease.renew_deadline_seconds / 2
    )
    elector = leadership.Elector(lock, config.lease, leadership.identity())
    memo.campaign = leadership.Campaign(elector, elected)
    memo.campaign.start()


@kopf.on.cleanup()
async def cleanup(memo: OperatorMemo, **_: Any) -> None:
    """Stop; a leader keeps renewing its Lease until the operator has stopped, then
    releases it, so that a standby starts neither too early nor a lease duration late."""
    if memo.campaign is not None:
        await memo.campaign.stand_down()
    if memo.gate is not None:
        await memo.gate.close()
    if memo.operator is not None and (memo.gate is None or memo.gate.started):
        await memo.operator.stop()
    if memo.campaign is not None:
        await memo.campaign.resign()


@kopf.on.probe(id="broker")
def broker_connected(memo: OperatorMemo, **_: Any) -> bool:
    """Connected to RabbitMQ. A standby, which connects to nothing by design, says True:
    it is healthy, and what reads this probe (readiness checks, people) takes False for a
    lost connection."""
    if memo.gate is not None and not memo.gate.started:
        return True
    return memo.running().broker_connected()


@kopf.on.probe(id="leader")
def leader(memo: OperatorMemo, **_: Any) -> str:
    """``leading`` or ``standby`` with ``--peering``; ``standalone`` without."""
    if memo.campaign is None:
        return "standalone"
    return "leading" if memo.campaign.leading else "standby"


@kopf.on.event(GROUP, VERSION, PLURAL)
async def task_event(type: str | None, body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    obj = dict(body)
    if memo.gate is not None and memo.gate.hold(type, obj):
        return  # a standby: kept until it is elected (standby.py)
    await memo.running().task_event(type, obj)
