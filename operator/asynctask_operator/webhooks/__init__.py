"""Webhooks: a signed CloudEvent to ``spec.webhook.url`` on every phase change of a task.

``dispatcher`` queues and delivers the events (:class:`WebhookDispatcher`, a status
observer); ``sender`` makes one attempt; ``ssrf`` keeps the targets safe; ``secret_cache``
reads the signing keys. ``cloudevents``, ``retry`` and ``signing`` are pure.

The rest of the operator uses the names below. They are imported when first asked for (PEP
562), so that importing a pure module of the package (a receiver imports ``signing`` alone)
loads no aiohttp.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asynctask_operator.webhooks.dispatcher import WebhookDispatcher
    from asynctask_operator.webhooks.ssrf import Resolve, system_resolve

_HOMES = {
    "WebhookDispatcher": "asynctask_operator.webhooks.dispatcher",
    "Resolve": "asynctask_operator.webhooks.ssrf",
    "system_resolve": "asynctask_operator.webhooks.ssrf",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Resolve", "WebhookDispatcher", "system_resolve"]
