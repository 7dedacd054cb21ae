"""The API's routes in one table: the app registers them, the OpenAPI document describes
them, and the authorization middleware reads from here what each one needs: which verbs on
which resource (``asynctasks`` and ``asynctaskschedules`` in the path's namespace, the
cluster-scoped ``asyncqueues``), and any further access (a schedule's trigger creates a
task, so it needs ``create`` on asynctasks too)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

TASKS = "/v1/namespaces/{namespace}/tasks"
TASK = TASKS + "/{name}"
SCHEDULES = "/v1/namespaces/{namespace}/schedules"
SCHEDULE = SCHEDULES + "/{name}"
QUEUES = "/v1/queues"
QUEUE = QUEUES + "/{name}"
Body = Literal["task", "batch", "schedule", "none"]
Scope = Literal["namespaced", "cluster"]
#: (resource, verb, named): one SubjectAccessReview; ``named`` asks for the path's object.
Access = tuple[str, str, bool]
TASKS_RESOURCE = "asynctasks"
SCHEDULES_RESOURCE = "asynctaskschedules"
QUEUES_RESOURCE = "asyncqueues"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    name: str  # the OpenAPI operationId and the aiohttp route name
    verbs: tuple[str, ...]  # SubjectAccessReview verbs on `resource`, all required
    summary: str
    body: Body = "none"
    #: What the route itself answers; every API route may also answer 401, 403, 404
    #: (a namespace not served), 429, 502 and 503 (openapi.COMMON).
    answers: tuple[int, ...] = (200,)
    resource: str = TASKS_RESOURCE
    scope: Scope = "namespaced"
    #: More access the route needs, as (resource, verb) in the same namespace, not named
    #: (the object does not exist yet): all required too.
    also: tuple[tuple[str, str], ...] = ()

    def access(self) -> tuple[Access, ...]:
        """Every (resource, verb, named) the caller needs: the route's verbs on its
        resource, for the path's object when it names one, then ``also``."""
        named = "{name}" in self.path
        own = tuple((self.resource, verb, named) for verb in self.verbs)
        return own + tuple((resource, verb, False) for resource, verb in self.also)


API_ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        TASKS,
        "createTask",
        ("create",),
        "Submit a task: 202 with Location and the task view (200 with the final view if "
        "it ends within `Prefer: wait=N`).",
        "task",
        (200, 202, 400, 404, 409, 413, 422),
    ),
    Route(
        "POST",
        TASKS + ":batch",
        "createTasks",
        ("create",),
        "Submit up to 500 tasks; one answer per item, in order (each item succeeds or "
        "fails on its own: see BatchAnswer).",
        "batch",
        (200, 400, 404, 413),
    ),
    Route(
        "GET",
        TASKS,
        "listTasks",
        ("list",),
        "Tasks of the namespace (from the cache), filtered and paginated.",
        answers=(200, 400, 404),
    ),
    Route(
        "GET",
        TASK,
        "getTask",
        ("get",),
        "One task's view, by its name or its uid; ETag is its resourceVersion "
        "(If-None-Match: 304). A task that is no longer live is read from the history "
        "archive (docs/history.md): by name its latest run, by uid that run; `archived: "
        "true` in the view.",
        answers=(200, 304, 400, 404),
    ),
    Route(
        "DELETE",
        TASK,
        "deleteTask",
        ("delete",),
        "Delete the task and its record.",
        answers=(204, 400, 404),
    ),
    Route(
        "GET",
        TASK + "/wait",
        "waitTask",
        ("get", "watch"),
        "Long-poll: answers as soon as the task is done, or at the timeout with done: "
        "false (at most 55 s).",
        answers=(200, 400, 404, 429),
    ),
    Route(
        "GET",
        TASK + "/events",
        "streamTask",
        ("get", "watch"),
        "Server-sent events: one per change (event: the phase, or progress), until the "
        "terminal one; Last-Event-ID resumes; 204 once the task has ended and been seen.",
        answers=(200, 204, 400, 404, 429),
    ),
    Route(
        "POST",
        TASK + "/cancel",
        "cancelTask",
        ("patch",),
        "Cancel the task (sets spec.cancel) and keep its record.",
        answers=(202, 400, 404, 409),
    ),
    Route(
        "GET",
        TASKS + ":watch",
        "watchTasks",
        ("list", "watch"),
        "Server-sent events of the namespace (the dashboard's live list): `counts` per "
        "queue and phase, then `task` (a view) or `deleted` for each change, filtered by "
        "queue and labelSelector; never ends by itself.",
        answers=(200, 400, 404, 429),
    ),
    Route(
        "POST",
        TASKS + ":cancel",
        "cancelTasks",
        ("list", "patch"),
        "Cancel every task whose labels match labelSelector (required, never empty), at "
        "most `limit` per call (then `continue`); each task is authorized by its name. "
        "Counts what was cancelled, skipped (already ended or cancel already requested: a "
        "second call skips them all) and failed, naming each task.",
        answers=(200, 400, 404),
    ),
    Route(
        "POST",
        TASKS + ":delete",
        "deleteTasks",
        ("list", "delete"),
        "Delete every task whose labels match labelSelector (required, never empty), at "
        "most `limit` per call (then `continue`); each task is authorized by its name. "
        "Counts what was deleted, skipped (already gone) and failed, naming each task.",
        answers=(200, 400, 404),
    ),
    Route(
        "GET",
        TASK + "/detail",
        "getTaskDetail",
        ("get",),
        "The whole record for a task page: the view, spec (with the request), status "
        "(conditions, webhook delivery, lastError) and labels; read from the apiserver, by "
        "name or uid, or from the history archive when the task is no longer live.",
        answers=(200, 400, 404),
    ),
    Route(
        "GET",
        "/v1/namespaces/{namespace}/history",
        "listHistory",
        ("list",),
        "The namespace's finished tasks from the history archive (docs/history.md), newest "
        "first, filtered by queue, phase, labelSelector, creator and a time range on the "
        "finish time, paginated by `continue` (keyset); each item `archived: false` while "
        "that task is still live; 404 ArchiveNotConfigured without one.",
        answers=(200, 400, 404),
    ),
    Route(
        "POST",
        TASK + ":resubmit",
        "resubmitTask",
        ("get", "create"),
        "Create a new task from this one's spec and labels (live, or else its latest "
        "archived run; by name or uid), labelled asynctask.dev/resubmitted-from with the "
        "original's uid: "
        "202 with Location and the new task's view.",
        answers=(202, 400, 404),
    ),
)

API_ROUTES += (
    Route(
        "GET",
        SCHEDULES,
        "listSchedules",
        ("list",),
        "Schedules of the namespace (read from the apiserver), by name.",
        answers=(200, 400, 404),
        resource=SCHEDULES_RESOURCE,
    ),
    Route(
        "POST",
        SCHEDULES,
        "createSchedule",
        ("create",),
        "Create a schedule (a cron `schedule` or `intervalSeconds`, and the task "
        "`template`): 201 with Location and the schedule view.",
        "schedule",
        (201, 400, 404, 409, 413, 422),
        resource=SCHEDULES_RESOURCE,
    ),
    Route(
        "GET",
        SCHEDULE,
        "getSchedule",
        ("get",),
        "One schedule's view: its next and last run, active tasks, Ready condition. Its "
        "tasks: listTasks with labelSelector=asynctask.dev/schedule=<name>.",
        answers=(200, 400, 404),
        resource=SCHEDULES_RESOURCE,
    ),
    Route(
        "DELETE",
        SCHEDULE,
        "deleteSchedule",
        ("delete",),
        "Delete the schedule; its tasks are garbage-collected (ownerReferences).",
        answers=(204, 400, 404),
        resource=SCHEDULES_RESOURCE,
    ),
    Route(
        "POST",
        SCHEDULE + ":suspend",
        "suspendSchedule",
        ("patch",),
        "Suspend the schedule (spec.suspend: true): no slot fires until it is resumed.",
        answers=(200, 400, 404),
        resource=SCHEDULES_RESOURCE,
    ),
    Route(
        "POST",
        SCHEDULE + ":resume",
        "resumeSchedule",
        ("patch",),
        "Resume the schedule (spec.suspend: false): it fires again from the next slot.",
        answers=(200, 400, 404),
        resource=SCHEDULES_RESOURCE,
    ),
    Route(
        "POST",
        SCHEDULE + ":trigger",
        "triggerSchedule",
        ("get",),
        "Run the schedule's template now (needs create on asynctasks too): a task named "
        "<schedule>-manual-..., labelled with the schedule, annotated "
        "asynctask.dev/triggered-by: manual and owned by the schedule; 202 with Location "
        "and the task view.",
        answers=(202, 400, 404, 422),
        resource=SCHEDULES_RESOURCE,
        also=((TASKS_RESOURCE, "create"),),
    ),
    Route(
        "GET",
        QUEUES,
        "listQueues",
        ("list",),
        "The cluster's queues with a policy (AsyncQueue, cluster-scoped; read from the "
        "apiserver): held, in flight, ready, consumers, start rate, paused.",
        resource=QUEUES_RESOURCE,
        scope="cluster",
    ),
    Route(
        "GET",
        QUEUE,
        "getQueue",
        ("get",),
        "One queue's view.",
        answers=(200, 400, 404),
        resource=QUEUES_RESOURCE,
        scope="cluster",
    ),
    Route(
        "POST",
        QUEUE + ":pause",
        "pauseQueue",
        ("patch",),
        "Pause the queue (spec.paused: true): no task of it starts; running ones finish.",
        answers=(200, 400, 404),
        resource=QUEUES_RESOURCE,
        scope="cluster",
    ),
    Route(
        "POST",
        QUEUE + ":resume",
        "resumeQueue",
        ("patch",),
        "Resume the queue (spec.paused: false): its held tasks are admitted again.",
        answers=(200, 400, 404),
        resource=QUEUES_RESOURCE,
        scope="cluster",
    ),
)

#: Served without authentication (probes, scraping, the API description).
PUBLIC_PATHS = ("/healthz", "/readyz", "/metrics", "/openapi.json")
#: The dashboard's static files (ui.py): public, they hold no data; the data comes from the
#: API with the user's token.
UI_PATHS = {"/ui": "dashboardRedirect", "/ui/": "dashboard", "/ui/{file}": "dashboardFile"}

BY_NAME = {route.name: route for route in API_ROUTES}
