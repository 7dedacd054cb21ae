"""Built-in autoscaling of worker Deployments on the depth of their queues.

``autoscaler`` lists the opted-in Deployments, reads queue depths and scales
(:class:`Autoscaler`); ``policy`` is pure: the annotations, the decision, the scale-down
window, and which namespaces are served (:func:`in_scope`, kopf's patterns, which the task
watch reads too).

The rest of the operator uses the names below. They are imported when first asked for (PEP
562), so that importing ``policy`` loads neither aiohttp, pika nor the Kubernetes client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asynctask_operator.scaling.autoscaler import Autoscaler
    from asynctask_operator.scaling.policy import in_scope

_HOMES = {
    "Autoscaler": "asynctask_operator.scaling.autoscaler",
    "in_scope": "asynctask_operator.scaling.policy",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Autoscaler", "in_scope"]
