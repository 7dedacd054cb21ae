"""A Python client of AsyncTask: submit tasks, follow their progress, get their results,
through the Kubernetes API or the HTTP gateway (docs/clients.md).

    from asynctask_client import Client

    with Client.from_kubeconfig() as client:          # or Client(url, token=...)
        task = client.submit("greet", {"name": "Ada"}, timeout=60)
        for view in task.updates():
            print(view.phase, view.progress, view.message)
        print(task.wait())                            # the result, or TaskFailed...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asynctask_client.errors import (
    ApiError,
    ClientError,
    ConfigError,
    ConnectionFailed,
    PayloadChecksumMismatch,
    PayloadsNeedGateway,
    TaskCancelled,
    TaskDeleted,
    TaskError,
    TaskFailed,
    TaskNotSucceeded,
    TaskTimedOut,
    WaitTimeout,
)
from asynctask_client.transport import Details
from asynctask_worker.messages import Phase
from asynctask_worker.views import TaskView

if TYPE_CHECKING:
    from asynctask_client.client import Client, Task


def __getattr__(name: str) -> Any:
    """``Client`` and ``Task`` are imported when first asked for: they need httpx (the
    ``client`` extra), and the ``asynctask`` command must be able to say so without it."""
    if name in ("Client", "Task"):
        return getattr(importlib.import_module("asynctask_client.client"), name)
    raise AttributeError(f"module 'asynctask_client' has no attribute {name!r}")


__all__ = [
    "ApiError",
    "Client",
    "ClientError",
    "ConfigError",
    "ConnectionFailed",
    "Details",
    "PayloadChecksumMismatch",
    "PayloadsNeedGateway",
    "Phase",
    "Task",
    "TaskCancelled",
    "TaskDeleted",
    "TaskError",
    "TaskFailed",
    "TaskNotSucceeded",
    "TaskTimedOut",
    "TaskView",
    "WaitTimeout",
]
