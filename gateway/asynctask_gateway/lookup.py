"""A task found by what a path names (issue 23, docs/history.md): its name or its uid, live
or archived.

``GET …/tasks/{name}`` takes a task's name or its uid (a Kubernetes uid is not a name a
person gives, and a uid is what links a resubmitted task to its original). The order:

1. the live task of that name;
2. when the path holds a uid, the live task with that uid;
3. the latest archived run of that name (``finished_at`` newest first);
4. when the path holds a uid, the archived run with that uid.

``archived_only`` (``?archived=true``) skips 1 and 2: the record as archived even while the
task still lives. Authorization was the route's SubjectAccessReview, on the path's text as
the resource name (a token limited by ``resourceNames`` reads a task by its name only), and
every archive query is bound to the authorized namespace.
"""

from __future__ import annotations

import logging
from typing import Any

from psycopg import Error as DatabaseError

from asynctask_gateway import patterns
from asynctask_gateway.archive import ArchiveReader, archived_view
from asynctask_gateway.kube import ApiError, tasks_path
from asynctask_gateway.problems import Problem, from_api_error
from asynctask_gateway.state import Gateway
from asynctask_worker.views import TaskView

log = logging.getLogger(__name__)


def is_uid(key: str) -> bool:
    return patterns.matches(patterns.UID, key)


def reader(gw: Gateway) -> ArchiveReader:
    if gw.archive is None:
        raise Problem(404, "ArchiveNotConfigured", "this gateway has no history archive")
    return gw.archive


def unavailable(exc: Exception) -> Problem:
    log.warning("the history archive could not be read: %s", exc)
    return Problem(503, "ArchiveUnavailable", "the history archive cannot be read right now")


def not_archived(key: str) -> Problem:
    return Problem(404, "NotFound", f'no archived run of the task "{key}"')


def live_name(gw: Gateway, namespace: str, key: str) -> str:
    """The name of the live task the path names: ``key`` itself, unless no task has that
    name and a cached one has that uid (then its name)."""
    if gw.cache.get(namespace, key) is not None or not is_uid(key):
        return key
    for entry in gw.cache.in_namespace(namespace):
        if entry.view.uid == key:
            return entry.view.name
    return key


async def archived_object(
    gw: Gateway, namespace: str, key: str, *, required: bool = False
) -> dict[str, Any] | None:
    """The latest archived run of the task named ``key``, else the run with uid ``key``;
    None when there is none (or no archive, unless ``required``: then 404)."""
    archive = reader(gw) if required else gw.archive
    if archive is None:
        return None
    try:
        found = await archive.latest(namespace, key)
        if found is None and is_uid(key):
            found = await archive.by_uid(namespace, key)
    except (DatabaseError, OSError) as exc:
        raise unavailable(exc) from exc
    return found


async def find_view(gw: Gateway, namespace: str, key: str, *, archived_only: bool) -> TaskView:
    """The view of the task ``key`` names (the cache first, then the archive); 404 if none."""
    if not archived_only:
        try:
            return (await gw.entry(namespace, live_name(gw, namespace, key))).view
        except Problem as gone:
            if gone.status != 404:
                raise
            obj = await archived_object(gw, namespace, key)
            if obj is None:
                raise
            return archived_view(obj)
    obj = await archived_object(gw, namespace, key, required=True)
    if obj is None:
        raise not_archived(key)
    return archived_view(obj)


async def find_object(
    gw: Gateway, namespace: str, key: str, *, archived_only: bool = False
) -> tuple[dict[str, Any], bool]:
    """The whole object of the task ``key`` names (with its request: the live one read
    from the apiserver, a GET), and whether it came from the archive; 404 if none."""
    if not archived_only:
        try:
            path = tasks_path(namespace, live_name(gw, namespace, key))
            return await gw.kube.request("GET", path), False
        except ApiError as exc:
            if exc.status != 404:
                raise from_api_error(exc) from exc
            obj = await archived_object(gw, namespace, key)
            if obj is None:
                raise from_api_error(exc) from exc
            return obj, True
    obj = await archived_object(gw, namespace, key, required=True)
    if obj is None:
        raise not_archived(key)
    return obj, True
