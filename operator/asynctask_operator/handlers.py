"""kopf registration, and nothing else: each handler is one call into :class:`app.Operator`.

Only ``@kopf.on.event`` is used for AsyncTask objects: it costs no API writes of kopf's own
(no finalizer, no last-handled annotation, no progress annotations), which keeps a task
within its budget of three status writes. Idempotence comes from the status itself: an
object without ``status.phase`` has not been queued yet.
"""

from __future__ import annotations

from typing import Any

import kopf

from asynctask_operator import kopf_settings
from asynctask_operator.app import Operator, OperatorMemo
from asynctask_operator.resource import GROUP, PLURAL, VERSION
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


@kopf.on.event(GROUP, VERSION, PLURAL)
async def task_event(type: str | None, body: kopf.Body, memo: OperatorMemo, **_: Any) -> None:
    await memo.running().task_event(type, dict(body))
