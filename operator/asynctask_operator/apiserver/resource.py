"""The AsyncTask custom resource's coordinates, in one place.

Kept in a module of their own, without dependencies, so that anything may import them: the
operator's API calls, its Kubernetes Events, the CloudEvents' ``source``, and the gateway.
"""

from __future__ import annotations

GROUP = "asynctask.dev"
VERSION = "v1alpha1"
PLURAL = "asynctasks"
KIND = "AsyncTask"
API = f"/apis/{GROUP}/{VERSION}"


def tasks_path(namespace: str | None, name: str | None = None) -> str:
    """The API path of a namespace's AsyncTasks (None: all namespaces), or of one of them."""
    base = f"{API}/namespaces/{namespace}/{PLURAL}" if namespace else f"{API}/{PLURAL}"
    return f"{base}/{name}" if name else base


API_VERSION = f"{GROUP}/{VERSION}"
#: AsyncTaskSchedule (issue 21): tasks created on a cron schedule or an interval.
SCHEDULE_PLURAL = "asynctaskschedules"
SCHEDULE_KIND = "AsyncTaskSchedule"


def schedules_path(namespace: str | None, name: str | None = None) -> str:
    """The API path of a namespace's AsyncTaskSchedules (None: all namespaces), or of one."""
    base = (
        f"{API}/namespaces/{namespace}/{SCHEDULE_PLURAL}"
        if namespace
        else f"{API}/{SCHEDULE_PLURAL}"
    )
    return f"{base}/{name}" if name else base


QUEUE_PLURAL = "asyncqueues"
QUEUE_KIND = "AsyncQueue"


def queues_path(scope: str | None = None, name: str | None = None) -> str:
    """The API path of the (cluster-scoped) AsyncQueues, or of one of them. ``scope`` is
    ignored: it is there so that a list+watch may take this as its path."""
    base = f"{API}/{QUEUE_PLURAL}"
    return f"{base}/{name}" if name else base
