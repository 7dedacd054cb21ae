"""The queue routes: list and get AsyncQueues, pause and resume them (``/v1/queues``).

AsyncQueue is cluster-scoped (a RabbitMQ queue is one for the whole cluster), so the
caller's SubjectAccessReview asks about ``asyncqueues`` cluster-wide (app.py's middleware)
and the gateway's ServiceAccount reads and patches them through a ClusterRole of its own.

Reads go straight to the apiserver, not through a watch cache: a cluster has a handful of
queues, and the counts their status carries (held, in flight, ready, start rate) are
rewritten by the operator every few seconds, so a watch would stream a change per queue
every few seconds to every gateway replica for a page a person opens now and then. One
list per call costs less, and answers the latest counts.

Pause and resume are merge patches of ``spec.paused``: the operator holds or admits the
queue's tasks from then on, and the answer is the queue as the patch left it.
"""

from __future__ import annotations

from aiohttp import web

from asynctask_gateway.kube import API
from asynctask_gateway.resource_calls import kube_call, spec_switch
from asynctask_gateway.state import CALL, GATEWAY, Handler, json_response
from asynctask_worker.resource_views import QueueView, queue_view

PLURAL = "asyncqueues"
#: The most queues one apiserver page holds (the list follows ``continue`` to the end).
PAGE = 500


def queues_path(name: str | None = None) -> str:
    return f"{API}/{PLURAL}/{name}" if name else f"{API}/{PLURAL}"


def queue_response(view: QueueView) -> web.Response:
    return json_response(
        view.to_json(), headers={"ETag": f'"{view.resource_version}"', "Cache-Control": "no-cache"}
    )


async def list_queues(request: web.Request) -> web.StreamResponse:
    gw = request.app[GATEWAY]
    params = {"limit": str(PAGE)}
    views: list[QueueView] = []
    while True:
        answer = await kube_call(gw, "GET", queues_path(), params=params)
        views += [queue_view(obj) for obj in answer.get("items") or []]
        token = (answer.get("metadata") or {}).get("continue")
        if not token:
            break
        params["continue"] = str(token)
    views.sort(key=lambda v: v.name)
    return json_response({"items": [v.to_json() for v in views]})


async def get_queue(request: web.Request) -> web.StreamResponse:
    gw, call = request.app[GATEWAY], request[CALL]
    return queue_response(queue_view(await kube_call(gw, "GET", queues_path(call.name))))


pause_queue = spec_switch(
    lambda call: queues_path(call.name), "paused", True, lambda o: queue_response(queue_view(o))
)
resume_queue = spec_switch(
    lambda call: queues_path(call.name), "paused", False, lambda o: queue_response(queue_view(o))
)


HANDLERS: dict[str, Handler] = {
    "listQueues": list_queues,
    "getQueue": get_queue,
    "pauseQueue": pause_queue,
    "resumeQueue": resume_queue,
}
