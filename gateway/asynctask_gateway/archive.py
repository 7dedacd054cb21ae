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

from asynctask_gateway.history import (
    TABLE,
    HistoryQuery,
    encode_continue,
    keys_statement,
    rows_statement,
)
from asynctask_gateway.history_plan import (
    BITMAP_DONE,
    BITMAP_ONLY,
    WALK_ENTRIES,
    Key,
    Walked,
    judge_walk,
    rest_bounds,
    rest_statement,
    walk_statement,
)
from asynctask_worker.views import TaskView, task_view

#: A page reads candidates' keys in rounds (more only when rows with long labels, which the
#: keys cannot judge, fail the selector): at most this many, the later ones larger.
MAX_ROUNDS = 6
MAX_BATCH = 2000
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


async def _fetch(conn: AsyncConnection[Any], sql: str, params: list[Any]) -> list[Key]:
    """The keys ``(finished_at, uid)`` a keys statement gives."""
    return [(r[0], r[1]) for r in await (await conn.execute(sql.encode(), params)).fetchall()]


class ArchiveReader:
    def __init__(self, url: str, *, pool_size: int = 2, walk_entries: int = WALK_ENTRIES) -> None:
        self._walk = walk_entries  # history_plan.WALK_ENTRIES (smaller in tests)
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
        """One page of a namespace's history, newest first, and the next page's token.

        Keys first (:meth:`_keys`), then only those rows (:func:`rows_statement`). If
        candidates whose long labels the index cannot judge fail the selector, the page
        reads more keys, in at most :data:`MAX_ROUNDS` rounds; past them it ends short,
        with a token to go on from the last key judged (a page may hold fewer than
        ``limit`` items and still have more)."""
        rows: list[tuple[Any, ...]] = []
        after, batch = query.after, query.limit + 1
        last: tuple[Any, ...] | None = None
        async with self._pool.connection() as conn:
            # A page's statements are short: JIT compiling (which PostgreSQL starts for a
            # costly plan, such as a bitmap over many partitions) costs more than it saves.
            await conn.execute(b"SET LOCAL statement_timeout = 5000; SET LOCAL jit = off")
            for _ in range(MAX_ROUNDS):
                keys = await self._keys(conn, namespace, query, after, batch)
                if keys:
                    sql, params = rows_statement(namespace, query, keys, _COLUMNS)
                    rows += await (await conn.execute(sql.encode(), params)).fetchall()
                if len(rows) > query.limit or len(keys) < batch:
                    last = None
                    break
                last = after = (keys[-1][0], keys[-1][1])
                batch = min(2 * batch, MAX_BATCH)
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            token: str | None = encode_continue(rows[-1][5], rows[-1][2])
        else:
            token = encode_continue(last[0], last[1]) if last is not None else None
        return [as_object(r) for r in rows], token

    async def _keys(
        self,
        conn: AsyncConnection[Any],
        namespace: str,
        query: HistoryQuery,
        after: Key | None,
        batch: int,
    ) -> list[Key]:
        """Up to ``batch`` keys of candidate rows after ``after``, newest first; fewer only
        when the range holds no more. Without an indexed label term, one ordered walk of
        the keyset index (:func:`keys_statement`); with one, a bounded walk, then the rest
        by the GIN bitmap if the walk found the selector rare (:mod:`history_plan`)."""
        if not query.label_indexed:
            return await _fetch(conn, *keys_statement(namespace, query, after, batch))
        sql, params = walk_statement(namespace, query, after, batch, self._walk)
        keys, edge = judge_walk(await (await conn.execute(sql.encode(), params)).fetchall())
        if len(keys) >= batch or edge is None:
            return keys  # the page is full, or the walk reached the range's end
        walked = Walked(keys, edge)
        before = walked.edge
        await conn.execute(BITMAP_ONLY)
        for oldest in rest_bounds(walked, batch - len(keys), query.since):
            sql, params = rest_statement(namespace, query, before, oldest, batch - len(keys))
            keys += await _fetch(conn, sql, params)
            if len(keys) >= batch or oldest is None:
                break
            before = (oldest, "")  # older than the window: (t, uid) < (oldest, "")
        await conn.execute(BITMAP_DONE)
        return keys
