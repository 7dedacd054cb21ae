"""AsyncTask worker SDK: write handlers for AsyncTask resources, run them from RabbitMQ.

.. code-block:: python

    from asynctask_worker import App, TaskContext, TaskFailed

    app = App()

    @app.task("resize-image")
    def resize(request: dict, ctx: TaskContext) -> dict:
        ctx.progress(10, "downloading")
        ...
        return {"url": "..."}

Run it with ``asynctask-worker mymodule:app``; test it without RabbitMQ with
:mod:`asynctask_worker.testing`. See docs/writing-a-worker.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from asynctask_worker._version import __version__

if TYPE_CHECKING:
    from asynctask_worker._runtime.runtime import Worker
    from asynctask_worker.app import App, TaskDefinition, TaskFailed
    from asynctask_worker.blobs import Blob, Payload
    from asynctask_worker.context import TaskCancelled, TaskContext
    from asynctask_worker.messages import Phase
    from asynctask_worker.metrics import WorkerMetrics
    from asynctask_worker.settings import WorkerSettings

#: Where each exported name lives. Imported when first asked for (PEP 562), so that
#: importing a submodule (the wire contract, the task view) loads neither the runtime nor
#: pika: the client and the gateway import those.
_EXPORTS = {
    "App": "asynctask_worker.app",
    "Blob": "asynctask_worker.blobs",
    "Payload": "asynctask_worker.blobs",
    "Phase": "asynctask_worker.messages",
    "TaskCancelled": "asynctask_worker.context",
    "TaskContext": "asynctask_worker.context",
    "TaskDefinition": "asynctask_worker.app",
    "TaskFailed": "asynctask_worker.app",
    "Worker": "asynctask_worker._runtime.runtime",
    "WorkerMetrics": "asynctask_worker.metrics",
    "WorkerSettings": "asynctask_worker.settings",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'asynctask_worker' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


__all__ = [
    "App",
    "Blob",
    "Payload",
    "Phase",
    "TaskCancelled",
    "TaskContext",
    "TaskDefinition",
    "TaskFailed",
    "Worker",
    "WorkerMetrics",
    "WorkerSettings",
    "__version__",
]
