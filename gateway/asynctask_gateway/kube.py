"""The gateway's apiserver client: the operator's async client
(:mod:`asynctask_operator.apiserver.apiclient`) under the gateway's name, and the coordinates
of the one resource it serves."""

from __future__ import annotations

from asynctask_operator.apiserver.apiclient import (
    ApiClient,
    ApiError,
    authorization,
    load_configuration,
    ssl_context,
)
from asynctask_operator.apiserver.resource import API, GROUP, KIND, PLURAL, VERSION, tasks_path

__all__ = [
    "API",
    "GROUP",
    "KIND",
    "PLURAL",
    "VERSION",
    "ApiError",
    "Kube",
    "authorization",
    "load_configuration",
    "ssl_context",
    "tasks_path",
]


class Kube(ApiClient):
    """The gateway process's one apiserver client (its calls and its watches each have
    their own connections)."""

    user_agent = "asynctask-gateway"
