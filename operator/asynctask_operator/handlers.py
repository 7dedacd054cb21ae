"""kopf registration, and nothing else: each handler is one call into :class:`app.Operator`.

kopf runs the process (start-up, clean-up, probes); it handles no resource. AsyncTasks are
watched by the operator itself (:mod:`task_watch`): no finalizer, no annotation, no write
of kopf's own, which keeps a task within its budget of three status writes. Idempotence
comes from the status itself: an object without ``status.phase`` has not been queued yet.

With ``--peering NAME`` the whole operator waits for leadership of the Lease NAME
(:mod:`leader.leadership`): the startup handler builds it but starts it, its watch included, only
once elected. A standby therefore watches nothing and holds nothing; once elected, its
first list of the tasks brings it what the previous leader left.
"""

from __future__ import annotations

from typing import Any

import kopf

from asynctask_operator import kopf_settings
from asynctask_operator.app import Operator, OperatorMemo
from asynctask_operator.leader import leadership
from asynctask_operator.settings import Config

#: How long the broker probe waits for a link still being made.
PROBE_WAIT_SECONDS = 3.0


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: OperatorMemo, **_: Any) -> None:
    kopf_settings.configure(settings)
    config = Config()
    operator = memo.operator = Operator(config, memo.namespaces)
    if memo.peering is None:
        operator.start()
        return
    lock = leadership.LeaseLock(
        operator.client,
        leadership.lease_namespace(),
        memo.peering,
        timeout=config.lease.renew_deadline_seconds / 2,
    )
    elector = leadership.Elector(lock, config.lease, leadership.identity(), operator.outage)
    memo.campaign = leadership.Campaign(elector, operator.start)
    memo.campaign.start()


@kopf.on.cleanup()
async def cleanup(memo: OperatorMemo, **_: Any) -> None:
    """Stop; a leader keeps renewing its Lease until the operator has stopped, then
    releases it, so that a standby starts neither too early nor a lease duration late. The
    apiserver client, the Lease's too, is closed last."""
    if memo.campaign is not None:
        await memo.campaign.stand_down()
    if memo.operator is not None and memo.operator.started:
        await memo.operator.stop()
    if memo.campaign is not None:
        await memo.campaign.resign()
    if memo.operator is not None:
        await memo.operator.close()


@kopf.on.probe(id="broker")
async def broker_connected(memo: OperatorMemo, **_: Any) -> bool:
    """Connected to RabbitMQ. A standby, which connects to nothing by design, says True:
    it is healthy, and what reads this probe (readiness checks, people) takes False for a
    lost connection. kopf serves a probe's answer for up to 10 s, so an operator still
    connecting waits a moment for the link rather than say False for the next 10 s."""
    if memo.campaign is not None and not memo.campaign.leading:
        return True
    return await memo.running().broker_connected(wait=PROBE_WAIT_SECONDS)


@kopf.on.probe(id="leader")
def leader(memo: OperatorMemo, **_: Any) -> str:
    """``leading`` or ``standby`` with ``--peering``; ``standalone`` without."""
    if memo.campaign is None:
        return "standalone"
    return "leading" if memo.campaign.leading else "standby"
