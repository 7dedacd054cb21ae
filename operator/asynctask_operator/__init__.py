"""AsyncTask operator: publishes AsyncTask resources to RabbitMQ and writes their status.

Run it with ``asynctask-operator`` (see ``--help``); settings come from ``ASYNCTASK_*``.
"""

from asynctask_operator.apiserver.resource import GROUP, KIND, PLURAL, VERSION
from asynctask_operator.settings import Config
from asynctask_operator.spec import AsyncTaskSpec

__all__ = ["GROUP", "KIND", "PLURAL", "VERSION", "AsyncTaskSpec", "Config"]
