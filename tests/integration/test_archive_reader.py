"""The gateway's reading of the history archive against a real PostgreSQL: filters, keyset
pages, one namespace only, SQL-looking text harmless, rows back as the same views."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from asynctask_gateway.archive import ArchiveReader, archived_view
from asynctask_gateway.history import HistoryQuery
from asynctask_operator.archive.record import record_of
from asynctask_operator.archive.store import PostgresArchive

T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)


def task(n: int, ns: str = "ns", **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "namespace": ns,
            "name": f"t{n:02d}",
            "uid": f"{ns}-u{n:02d}",
            "labels": {"n": str(n), **labels},
            "annotations": {"asynctask.dev/created-by": "alice" if n % 2 else "bob"},
            "creationTimestamp": "2026-12-05T11:00:00Z",
        },
        "spec": {"queue": "even" if n % 2 == 0 else "odd", "request": {"n": n, "s": "\x00"}},
        "status": {
            "phase": "Failed" if n % 3 == 0 else "Succeeded",
            "attempts": 1,
            "result": {"n": n},
            "completionTime": (T0 + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
    }


async def fill(url: str) -> None:
    archive = PostgresArchive(url)
    await archive.open()
    try:
        rows = [record_of(task(n)) for n in range(30)] + [record_of(task(1, ns="other"))]
        await archive.upsert([r for r in rows if r is not None])
    finally:
        await archive.close()


async def names(reader: ArchiveReader, **params: str) -> list[str]:
    objects, _ = await reader.page("ns", HistoryQuery.parse(params))
    return [o["metadata"]["name"] for o in objects]


async def test_filters_pages_and_namespaces(database_url: str) -> None:
    await fill(database_url)
    reader = ArchiveReader(database_url)
    await reader.start()
    try:
        assert await names(reader, queue="odd", phase="Failed") == [
            "t27",
            "t21",
            "t15",
            "t09",
            "t03",
        ]
        assert await names(reader, labelSelector="n in (4,7),n!=4") == ["t07"]
        assert await names(reader, labelSelector="!n") == []
        assert await names(reader, creator="bob", until="2026-12-05T12:05:00Z") == [
            "t04",
            "t02",
            "t00",
        ]
        assert await names(reader, since="2026-12-05T12:28:00Z") == ["t29", "t28"]
        # SQL-looking text is a value like any other.
        assert await names(reader, queue="odd' OR '1'='1") == []
        assert await names(reader, labelSelector="n=1';DROP--") == []
        # Keyset pages: newest first, every row once, the other namespace never.
        seen: list[str] = []
        params: dict[str, str] = {"limit": "7"}
        while True:
            objects, token = await reader.page("ns", HistoryQuery.parse(params))
            seen += [o["metadata"]["uid"] for o in objects]
            if token is None:
                break
            params["continue"] = token
        assert seen == [f"ns-u{n:02d}" for n in reversed(range(30))]
        # The latest run by name, whole, as the view a live task has.
        obj = await reader.latest("ns", "t03")
        assert obj is not None
        assert obj["spec"]["request"] == {"n": 3, "s": "\x00"}
        view = archived_view(obj)
        assert view.archived and view.done and view.phase.value == "Failed"
        assert view.queue == "odd"
        succeeded = await reader.latest("ns", "t04")
        assert succeeded is not None and archived_view(succeeded).result == {"n": 4}
        assert await reader.latest("ns", "nope") is None
        assert await reader.latest("other", "t03") is None
    finally:
        await reader.close()


#: Labels over the keyset index's bound (``LABELS_KEY_MAX``): the reader must judge these
#: rows on their full labels.
LATER = "2026-12-05T12:10:00Z"
LONG = {f"pad{i:02d}.example.com/k": "v" * 63 for i in range(30)}


async def fill_long(url: str) -> None:
    """30 short-labelled rows (as :func:`fill`), and 150 newer ones with long labels: the
    newest 140 without ``app``, the 10 before them with ``app=x``."""
    bodies = [task(n) for n in range(30)]
    for n in range(30, 180):
        bodies.append(task(n, **LONG, **({"app": "x"} if n < 40 else {})))
    rows = [record_of(b) for b in bodies]
    assert all(r is not None and (r.labels_key is None) == (n >= 30) for n, r in enumerate(rows))
    archive = PostgresArchive(url)
    await archive.open()
    try:
        await archive.upsert([r for r in rows if r is not None])
    finally:
        await archive.close()


async def reference(url: str, query: HistoryQuery) -> list[str]:
    """The rows a selector matches on the full labels alone: the reader's one statement
    before the keyset index (every condition on ``labels``, newest first)."""
    where = " AND ".join(["namespace = %s", *query.conditions, *query.labels])
    sql = f"SELECT uid FROM asynctask_history WHERE {where} ORDER BY finished_at DESC, uid DESC"
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(sql.encode(), ["ns", *query.params, *query.label_params])
        return [str(r[0]) for r in await cur.fetchall()]


async def walk(reader: ArchiveReader, params: dict[str, str]) -> tuple[list[str], int]:
    """Every page of a listing: the uids in order, and how many pages were short."""
    seen: list[str] = []
    short = 0
    params = dict(params)
    limit = int(params.get("limit", "100"))
    while True:
        objects, token = await reader.page("ns", HistoryQuery.parse(params))
        seen += [o["metadata"]["uid"] for o in objects]
        if token is None:
            return seen, short
        short += len(objects) < limit
        params["continue"] = token


async def test_selectors_match_the_same_rows_with_labels_over_the_bound(database_url: str) -> None:
    await fill_long(database_url)
    reader = ArchiveReader(database_url)
    # Walks of 3 entries: every selector with a positive term goes on by the bitmap plan
    # (history_plan), its windows and the rest of the range, on the same rows.
    bitmap = ArchiveReader(database_url, walk_entries=3)
    await reader.start()
    await bitmap.start()
    try:
        selectors = [
            "",
            "app=x",
            "app!=x",
            "app",
            "!app",
            "app in (x,y)",
            "app notin (x)",
            "pad00.example.com/k",
            f"pad29.example.com/k={'v' * 63}",
            "n in (4,7,35,170),n!=4",
            "app=x,n notin (31,32)",
            "n=1';DROP--",
            "app notin (x,y),!n",
            "!n",
        ]
        for selector in selectors:
            for extra in (
                {},
                {"queue": "odd"},
                {"phase": "Failed", "since": "2026-12-05T12:10:00Z"},
            ):
                params = {"labelSelector": selector, **extra}
                expected = await reference(database_url, HistoryQuery.parse(params))
                for limit in ("1", "7", "500"):
                    seen, _ = await walk(reader, {**params, "limit": limit})
                    assert seen == expected, (params, limit)
                seen, _ = await walk(bitmap, {**params, "limit": "7"})
                assert seen == expected, (params, "bitmap")
        # app=x with pages of one: the 140 newest rows are long-labelled candidates the
        # index cannot judge and the selector drops; the reader reads more keys in rounds,
        # and past them ends a page short with a token, never skipping a row.
        assert (await reference(database_url, HistoryQuery.parse({"labelSelector": "app=x"})))[
            :1
        ] == ["ns-u39"]
        seen, short = await walk(reader, {"labelSelector": "app=x", "limit": "1"})
        assert seen == [f"ns-u{n:02d}" for n in reversed(range(30, 40))]
        assert short >= 1
    finally:
        await reader.close()
        await bitmap.close()
