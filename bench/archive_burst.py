"""The archive's cost on the live path (``archive.py burst``): the same burst through the
real stack with the archive off, then on, alternating, each burst in a namespace of its
own and with an operator started for it (with or without ``ASYNCTASK_ARCHIVE_URL``), all
in one run; then the rows/s the operator's writer sustains alone."""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime
from typing import Any

import psycopg
from kubeapi import KubeApi
from stack import Stack, load
from throughput import NOOP, Recorder, create_all, poll

from asynctask_operator.archive.record import record_of
from asynctask_operator.archive.schema import TABLE
from asynctask_operator.archive.store import PostgresArchive
from testbed import PostgreSQL


def archived_rows(url: str, namespace: str) -> int:
    with psycopg.connect(url) as conn:
        found = conn.execute(
            f"SELECT count(*) FROM {TABLE} WHERE namespace = %s", (namespace,)
        ).fetchone()
    return int(found[0]) if found else 0


async def one_burst(
    stack: Stack, namespace: str, tasks: int, parallel: int, url: str | None
) -> tuple[float, float | None]:
    """tasks/s end to end (created at once → the last seen terminal by a watch), and with
    the archive on, how long after the start the archive held every row (polled every
    0.2 s)."""
    rec = Recorder()
    names = [f"burst-{i:06d}" for i in range(tasks)]
    async with KubeApi(stack.cp.kubeconfig, parallel + 2) as api:
        watch = asyncio.create_task(rec.follow(api, namespace))
        await asyncio.sleep(0.5)
        start = time.monotonic()
        creating = asyncio.create_task(create_all(api, namespace, names, NOOP, rec, parallel))
        await poll(lambda: len(rec.done) >= tasks, 0.5)
        await creating
        took = max(rec.done.values()) - start
        watch.cancel()
        archived = None
        if url is not None:
            while await asyncio.to_thread(archived_rows, url, namespace) < tasks:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            archived = time.monotonic() - start
        # Gone before the next burst's operator starts: it would handle (and, archive on,
        # archive) them from its initial list while the next burst runs.
        await api.delete_all(namespace)
        while await api.count_phases(namespace):  # noqa: ASYNC110
            await asyncio.sleep(1)
    return tasks / took, archived


def bursts(tasks: int, rounds: int, parallel: int, concurrency: int, url_of: Any) -> None:
    with Stack() as stack, PostgreSQL() as pg:
        url = url_of(pg)
        asyncio.run(migrate(url))
        stack.start_worker(concurrency)
        figures: dict[bool, list[float]] = {False: [], True: []}
        for r in range(rounds):
            for on in (False, True):
                if on:
                    stack.env["ASYNCTASK_ARCHIVE_URL"] = url
                else:
                    stack.env.pop("ASYNCTASK_ARCHIVE_URL", None)
                namespace = f"ab-{r}-{int(on)}"
                stack.cp.kubectl("create", "namespace", namespace)
                stack.start_operator()
                rate, archived = asyncio.run(
                    one_burst(stack, namespace, tasks, parallel, url if on else None)
                )
                stack.stop_operator()
                figures[on].append(rate)
                more = (
                    f"; every row archived {archived:.1f}s after the start, "
                    f"{archived - tasks / rate:.1f}s after the last task finished "
                    f"({tasks / archived:.1f} rows/s over the burst)"
                    if archived
                    else ""
                )
                print(
                    f"burst {r + 1}: {tasks} tasks, archive {'on' if on else 'off'}: "
                    f"{rate:.1f} tasks/s{more} ({load()})",
                    flush=True,
                )
        off, on_ = statistics.mean(figures[False]), statistics.mean(figures[True])
        print(
            f"burst: mean of {rounds}: archive on {on_:.1f} tasks/s, off {off:.1f}: "
            f"{on_ / off:.0%}",
            flush=True,
        )
        asyncio.run(writer_capacity(url))


async def migrate(url: str) -> None:
    archive = PostgresArchive(url)
    await archive.open()
    await archive.close()


def terminal_task(i: int, at: str) -> dict[str, Any]:
    """A finished task as the operator sees it: 1 KiB request, a small result."""
    return {
        "metadata": {
            "namespace": "writer",
            "name": f"w-{i}",
            "uid": f"w-{i:08d}",
            "creationTimestamp": at,
            "labels": {"app": "bench"},
        },
        "spec": {"queue": "hello", "request": {"input": f"{i:08x}" * 128}},
        "status": {"phase": "Succeeded", "completionTime": at, "result": {"ok": True}},
    }


async def writer_capacity(url: str, batches: int = 50, size: int = 200) -> None:
    """The operator's writer alone: ``upsert`` in batches of the default size (200), one
    batch at a time, as the operator's archiver writes."""
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    records = [r for i in range(batches * size) if (r := record_of(terminal_task(i, at)))]
    archive = PostgresArchive(url)
    await archive.open()
    try:
        t0 = time.perf_counter()
        for n in range(batches):
            await archive.upsert(records[n * size : (n + 1) * size])
        took = time.perf_counter() - t0
    finally:
        await archive.close()
    print(
        f"writer: {len(records)} rows (1 KiB requests) in batches of {size}: "
        f"{len(records) / took:,.0f} rows/s ({load()})",
        flush=True,
    )
