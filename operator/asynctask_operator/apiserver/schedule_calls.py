"""The schedule controller's calls (``ports.ScheduleApi``) on the process's one client.

A slot's task is created by name, so a second create of the same slot (a restart, a new
leader) is answered 409 AlreadyExists: told as :class:`errors.AlreadyExists`, the proof that
the slot already ran. The creates have connections of their own (``pool="schedules"``):
a slot's task is not created late behind the tasks' status writes. A schedule's status is
replaced in one JSON patch that tests the uid (the schedule deleted and created again under
its name never gets the old one's status).
"""

from __future__ import annotations

from typing import Any

from asynctask_operator.apiserver.apiclient import METADATA_ONLY, ApiClient, ApiError
from asynctask_operator.apiserver.kube import Kube, replace_status_of
from asynctask_operator.apiserver.resource import schedules_path, tasks_path
from asynctask_operator.errors import AlreadyExists, Gone, Rejected
from asynctask_operator.limits import API_ERROR_CHARS


class ScheduleCalls:
    def __init__(self, client: ApiClient) -> None:
        self._client = client
        self._kube = Kube(client)

    async def create_task(self, namespace: str, body: dict[str, Any]) -> dict[str, Any]:
        """The created task's metadata (its spec is the body's, its status empty): the
        apiserver encodes, and the operator parses, no more than the controller reads."""
        try:
            return await self._client.call(
                "POST", tasks_path(namespace), body=body, pool="schedules", accept=METADATA_ONLY
            )
        except ApiError as exc:
            if exc.status == 409:
                raise AlreadyExists(str(body["metadata"].get("name"))) from exc
            if exc.status in (400, 403, 404, 422):  # invalid, refused, namespace gone
                raise Rejected(exc.message[:API_ERROR_CHARS]) from exc
            raise

    async def cancel_task(self, namespace: str, name: str, uid: str) -> None:
        body = [
            {"op": "test", "path": "/metadata/uid", "value": uid},
            {"op": "add", "path": "/spec/cancel", "value": True},
        ]
        try:
            await self._client.call(
                "PATCH",
                tasks_path(namespace, name),
                body=body,
                content_type="application/json-patch+json",
            )
        except ApiError as exc:
            if exc.status in (404, 422):
                raise Gone(f"{namespace}/{name}") from exc
            raise

    async def delete(self, namespace: str, name: str, uid: str) -> None:
        await self._kube.delete(namespace, name, uid)

    async def write_schedule_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> None:
        path = schedules_path(namespace, name)
        await replace_status_of(self._client, path, uid, status, what=f"{namespace}/{name}")

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        await self._kube.create_event(namespace, body)
