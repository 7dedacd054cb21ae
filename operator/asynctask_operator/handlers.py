"""kopf registration, and nothing else: each handler is one call into :class:`app.Operator`.

kopf runs the process (start-up, clean-up, probes); it handles no resource. AsyncTasks are
watched by the operator itself (:mod:`task_watch`): no finalizer, no annotation, no write
of kopf's own, which keeps a task within its budget of three status writes. Idempotence
comes from the status itself: an object without ``status.phase`` has not been queued yet.
"""

from __future__ import annotations

from typing import Any

import kopf

from asynctask_operator import kopf_settings
from asynctask_operator.app import Operator, OperatorMemo
from asynctask_operator.settings import Config


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: OperatorMemo, **_: Any) -> None:
    kopf_settings.configure(settings)
    memo.operator = Operator(Config(), memo.namespaces)
    memo.operator.start()


@kopf.on.cleanup()
async def cleanup(memo: OperatorMemo, **_: Any) -> None:
    if memo.operator is not None:
        await memo.operator.stop()


@kopf.on.probe(id="broker")
def broker_connected(memo: OperatorMemo, **_: Any) -> bool:
    return memo.running().broker_connected()
