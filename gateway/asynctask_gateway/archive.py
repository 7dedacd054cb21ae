"""The history archive, read (issue 23, docs/history.md): psycopg 3 and its pool, with the
gateway's own credentials (``ASYNCTASK_GATEWAY_ARCHIVE_URL``, a user that may only SELECT).

The operator writes the archive; the gateway only reads it, for the namespace a call was
authorized on (every query is bound to it), so history never leaks across namespaces. An
archived row comes back as the object it was, then as the same :class:`TaskView` a live
task has, with ``archived: true``.
"""

from __future__ import annotations

import json
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from asynctask_gateway.history import HistoryQuery, encode_continue
from asynctask_worker.views import TaskView, task_view

TABLE = "asynctask_history"
_PAYLOADS = ("spec", "request", "result", "error", "status", "annotations")
_COLUMNS = "namespace, name, uid, labels, created_at, finished_at, " + ", ".join(
    f"{p}, {p}_text" for p in _PAYLOADS
)


def _value(jsonb: Any, text: str | None) -> Any:
    return json.loads(text) if text is not None else jsonb


def as_object(row: tuple[Any, ...]) -> dict[str, Any]:
    """An archived row as the AsyncTask object it was (what the views are made from)."""
    namespace, name, uid, labels, created_at, _ = row[:6]
    spec, request, result, error, status, annotations = (
        _value(row[6 + 2 * i], row[7 + 2 * i]) for i in range(len(_PAYLOADS))
    )
    status = dict(status or {})
    if result is not None:
        status["result"] = result
    if error is not None:
        status["error"] = error
    return {
        "metadata": {
            "namespace": namespace,
            "name": name,
            "uid": uid,
            "labels": labels or {},
            "annotations": annotations or {},
            "creationTimestamp": created_at.strftime("%Y-%m-%dT%H:%M:%SZ") if created_at else None,
            "resourceVersion": f"archived-{uid}",
        },
        "spec": {**(spec or {}), "request": request},
        "status": status,
    }


def archived_view(obj: dict[str, Any]) -> TaskView:
    return task_view(obj).model_copy(update={"archived": True})


class ArchiveReader:
    def __init__(self, url: str, *, pool_size: int = 2) -> None:
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            timeout=10,
            check=AsyncConnectionPool.check_connection,
            kwargs={"connect_timeout": 5},
            name="asynctask-gateway-archive",
        )

    async def start(self) -> None:
        await self._pool.open(wait=False)

    async def close(self) -> None:
        await self._pool.close()

    async def latest(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The newest archived run of a task by name in a namespace, as its object."""
        sql = (
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE namespace = %s AND name = %s "
            "ORDER BY finished_at DESC, uid DESC LIMIT 1"
        )
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql.encode(), (namespace, name))
            row = await cur.fetchone()
        return as_object(row) if row is not None else None

    async def by_uid(self, namespace: str, uid: str) -> dict[str, Any] | None:
        """The archived run with this uid in a namespace (the primary key's first column),
        as its object."""
        sql = f"SELECT {_COLUMNS} FROM {TABLE} WHERE uid = %s AND namespace = %s LIMIT 1"
        async with self._pool.connection() as conn:
            cur = await conn.execute(sql.encode(), (uid, namespace))
            row = await cur.fetchone()
        return as_object(row) if row is not None else None

    async def page(
        self, namespace: str, query: HistoryQuery
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of a namespace's history, newest first, and the next page's token."""
        conditions = ["namespace = %s", *query.conditions]
        params: list[Any] = [namespace, *query.params]
        if query.after is not None:
            conditions.append("(finished_at, uid) < (%s, %s)")
            params += list(query.after)
        sql = (
            f"SELECT {_COLUMNS} FROM {TABLE} WHERE {' AND '.join(conditions)} "
            "ORDER BY finished_at DESC, uid DESC LIMIT %s"
        )
        async with self._pool.connection() as conn:
            await conn.execute(b"SET LOCAL statement_timeout = 5000")
            cur = await conn.execute(sql.encode(), [*params, query.limit + 1])
            rows = await cur.fetchall()
        more = len(rows) > query.limit
        rows = rows[: query.limit]
        token = encode_continue(rows[-1][5], rows[-1][2]) if more and rows else None
        return [as_object(r) for r in rows], token
