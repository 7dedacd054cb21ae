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

from asynctask_worker._runtime.runtime import Worker
from asynctask_worker._version import __version__
from asynctask_worker.app import App, TaskDefinition, TaskFailed
from asynctask_worker.context import TaskCancelled, TaskContext
from asynctask_worker.messages import Phase
from asynctask_worker.metrics import WorkerMetrics
from asynctask_worker.settings import WorkerSettings

__all__ = [
    "App",
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
