"""Benchmark: the history archive (issue 23). Not a test: it prints figures, with the load
average.

    PYTHONPATH=hack:bench .venv/bin/python bench/archive.py MODE [options]

Modes:

* ``generate``: --rows rows (1 KiB requests, a month's spread: ``archive_data.py``)
  written by PostgreSQL itself into the archive's table, made by the operator's own
  migrations, in a private server whose cluster lives in --workdir (kept: the other modes
  start it again). The listing indexes are set aside while loading and built after, each
  from its own definition (as a migration would build them on a filled table). Chunks of
  --chunk rows; with --lock FILE each chunk (and the index builds, together) holds that flock and
  releases it between (a machine shared with other benchmarks). Resumes where it stopped;
  ``--stop-loading`` loads no more and builds the indexes over the rows there.
* ``query``: the first page of filtered lists and ``GET`` by name through the gateway's
  own reader (``ArchiveReader``: its SQL, its pool, its conversion to objects), --samples
  each with random filters; p50/p99/max; EXPLAIN ANALYZE of the slowest query of each
  kind (each statement of the plan the reader chose); disk bytes per row; then
  (--retention) the time retention takes to drop the oldest day, idle and with a reader
  listing meanwhile; then (--backfill) migration 3's backfill of the oldest day, timed.
* ``burst``: --tasks no-op tasks at once through the real stack (control plane, RabbitMQ,
  operator, worker) with the archive off, then on (--rounds of each, alternating, each in
  a namespace of its own, the same run): tasks/s end to end, and when the archive held
  every row; then the rows/s the operator's writer sustains alone (``PostgresArchive.
  upsert`` in batches of the default size).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import archive_data
import psycopg
from archive_burst import bursts, migrate
from archive_data import report_size, size
from stack import load

from asynctask_gateway.archive import ArchiveReader
from asynctask_gateway.history import HistoryQuery, keys_statement
from asynctask_gateway.history_plan import (
    BITMAP_ONLY,
    Walked,
    judge_walk,
    rest_bounds,
    rest_statement,
    walk_statement,
)
from asynctask_operator.archive.migrate import backfill_partition
from asynctask_operator.archive.schema import (
    MIGRATIONS,
    TABLE,
    partition_day,
    partition_ddl,
    partition_name,
)
from asynctask_operator.archive.store import PostgresArchive
from testbed import PostgreSQL

DATABASE = "archive_bench"
#: The bench server's settings (over the test bed's): memory for a table of gigabytes on a
#: machine with 23 GiB, still far below what a database host would give it.
SETTINGS = {
    "shared_buffers": "512MB",
    "maintenance_work_mem": "512MB",
    "work_mem": "16MB",
    # 1 GB, not 4: 10M rows take 25 GiB of a disk that must keep 10 GB free, and the WAL
    # of a load and its index builds stays near this (fsync off: checkpoints are cheap).
    "max_wal_size": "1GB",
    "checkpoint_timeout": "15min",
    "effective_cache_size": "8GB",
}


@contextlib.contextmanager
def heavy(lock: str | None) -> Iterator[None]:
    """Hold ``lock`` (flock) for the block when one is given."""
    if lock is None:
        yield
        return
    with open(lock, "a") as handle:
        waited = time.monotonic()
        fcntl.flock(handle, fcntl.LOCK_EX)
        if (w := time.monotonic() - waited) > 1:
            print(f"  (waited {w:.0f}s for the lock)", flush=True)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def server(workdir: Path) -> PostgreSQL:
    workdir.mkdir(parents=True, exist_ok=True)
    return PostgreSQL(workdir=workdir, settings=SETTINGS)


def url_of(pg: PostgreSQL) -> str:
    if not pg.psql("postgres", f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"):
        pg.create_database(DATABASE)
    return pg.url.rsplit("/", 1)[0] + "/" + DATABASE


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def spread(values: list[float]) -> str:
    return (
        f"p50 {pct(values, 0.5):.1f} ms, p99 {pct(values, 0.99):.1f} ms, "
        f"max {pct(values, 1.0):.1f} ms ({len(values)} samples)"
    )


# generate ---------------------------------------------------------------------------------


def state(conn: psycopg.Connection[Any]) -> dict[str, str]:
    conn.execute(f"CREATE TABLE IF NOT EXISTS {archive_data.STATE} (k text PRIMARY KEY, v text)")
    return dict(conn.execute(f"SELECT k, v FROM {archive_data.STATE}").fetchall())


def put(conn: psycopg.Connection[Any], key: str, value: str) -> None:
    conn.execute(
        f"INSERT INTO {archive_data.STATE} VALUES (%s, %s) "
        "ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.v",
        (key, value),
    )


def set_indexes_aside(conn: psycopg.Connection[Any], saved: dict[str, str]) -> None:
    """Drop the listing indexes (kept: the primary key), their definitions saved."""
    if any(k.startswith("index:") for k in saved):
        return
    rows = conn.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexname <> %s",
        (TABLE, f"{TABLE}_pkey"),
    ).fetchall()
    for name, definition in rows:
        # pg_indexes gives "ON ONLY <table>" for a partitioned table's index: the parent's
        # alone; built again without ONLY it is made on every partition, as the migration's.
        definition = definition.replace(" ON ONLY ", " ON ", 1)
        put(conn, f"index:{name}", definition)
        conn.execute(f"DROP INDEX {name}")
    print(f"generate: {len(rows)} listing indexes set aside while loading", flush=True)


def generate(
    workdir: Path,
    rows: int,
    chunk: int,
    days: int,
    lock: str | None,
    min_free: int,
    stop_loading: bool = False,
) -> None:
    with server(workdir) as pg:
        url = url_of(pg)
        asyncio.run(migrate(url))
        end = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        with psycopg.connect(url, autocommit=True) as conn:
            saved = state(conn)
            start = datetime.fromisoformat(
                saved.get("start") or (end - timedelta(days=days - 1)).isoformat()
            )
            put(conn, "start", start.isoformat())
            put(conn, "rows", str(rows))
            put(conn, "days", str(days))
            for d in range(days):
                conn.execute(partition_ddl((start + timedelta(days=d)).date()))
            set_indexes_aside(conn, state(conn))
            done = int(state(conn).get("done", "0"))
            loading, first = 0.0, done  # seconds spent loading (the lock held), rows then
            while done < rows and not stop_loading:
                with heavy(lock):
                    held = time.monotonic()
                    while done < rows and time.monotonic() - held < 600:
                        if shutil.disk_usage(workdir).free < min_free:
                            raise SystemExit(
                                f"generate: stopped at {done:,} rows: disk nearly full"
                            )
                        hi = min(rows, done + chunk)
                        step = min(hi - done, 100_000)
                        params = {
                            "lo": done,
                            "hi": done + step - 1,
                            "rows": rows,
                            "start": start,
                            "span": days * 86400 - 60,
                        }
                        conn.execute(archive_data.INSERT, params)
                        done += step
                        put(conn, "done", str(done))
                        rate = (done - first) / (loading + time.monotonic() - held)
                        print(
                            f"  {done:,} rows ({rate:,.0f} rows/s; {size(conn) / 2**30:.2f} GiB; "
                            f"{load()})",
                            flush=True,
                        )
                        if done % chunk == 0:
                            break
                    loading += time.monotonic() - held
                    if done >= rows:
                        build_indexes(conn, None)  # in the same hold
            build_indexes(conn, lock)
            # What autovacuum does to an insert-only table: statistics, and the visibility map
            # that lets index-only scans (the listing's keys) skip the table.
            conn.execute(f"VACUUM (ANALYZE) {TABLE}")
            report_size(conn)


def build_indexes(conn: psycopg.Connection[Any], lock: str | None) -> None:
    """Build the listing indexes set aside, all in one hold of the lock (each takes a
    minute or two on 10M rows; waiting in line once, not six times)."""
    todo = sorted((k, v) for k, v in state(conn).items() if k.startswith("index:"))
    if not todo:
        return
    with heavy(lock):
        for key, definition in todo:
            start = time.monotonic()
            conn.execute(definition)
            conn.execute(f"DELETE FROM {archive_data.STATE} WHERE k = %s", (key,))
            print(
                f"generate: built {key[6:]} in {time.monotonic() - start:.1f}s ({load()})",
                flush=True,
            )


# query ------------------------------------------------------------------------------------


def day_window(start: datetime, days: int) -> dict[str, str]:
    """A random 24-hour window inside the generated month (since/until)."""
    since = start + timedelta(seconds=random.uniform(0, (days - 1) * 86400))
    return {
        "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "until": (since + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def filters(kind: str, start: datetime, days: int, batches: range) -> dict[str, str]:
    phase = random.choices(["Succeeded", "Failed", "Error"], [5, 3, 2])[0]
    queue = f"q-{random.randrange(10)}"
    app = f"app={'app-' + str(random.randrange(50))}"
    if kind == "queue+phase+day":
        return {"queue": queue, "phase": phase, **day_window(start, days)}
    if kind == "label+day":
        return {"labelSelector": app, **day_window(start, days)}
    if kind == "queue+phase+label+day":
        return {"queue": queue, "phase": phase, "labelSelector": app, **day_window(start, days)}
    if kind == "rare label, all days":
        return {"labelSelector": f"batch=b-{random.choice(batches)}"}
    if kind == "label, all days":
        return {"labelSelector": app}
    raise ValueError(kind)


KINDS = (
    "queue+phase+day",
    "label+day",
    "queue+phase+label+day",
    "rare label, all days",
    "label, all days",
)


def explain_keys(url: str, namespace: str, query: HistoryQuery) -> None:
    """EXPLAIN ANALYZE of each statement the reader's keys step runs for a first page
    (``ArchiveReader._keys``, its plan followed here step by step); the rows step then
    reads those 101 rows by key."""
    batch = query.limit + 1
    with psycopg.connect(url) as conn:
        if not query.label_indexed:
            explain(conn, "keys", *keys_statement(namespace, query, query.after, batch))
            return
        sql, params = walk_statement(namespace, query, query.after, batch)
        explain(conn, "the walk (and its edge)", sql, params)
        keys, edge = judge_walk(conn.execute(sql, params).fetchall())
        if len(keys) >= batch or edge is None:
            return
        walked = Walked(keys, edge)
        before = walked.edge
        conn.execute(BITMAP_ONLY)
        print(f"  the walk found {len(keys)} keys in its bound; the rest by the bitmap:")
        for oldest in rest_bounds(walked, batch - len(keys), query.since):
            sql, params = rest_statement(namespace, query, before, oldest, batch - len(keys))
            window = "the rest" if oldest is None else f"back to {oldest:%Y-%m-%d %H:%M:%S}"
            explain(conn, f"the bitmap, {window}", sql, params)
            keys += [(r[0], r[1]) for r in conn.execute(sql, params).fetchall()]
            if len(keys) >= batch or oldest is None:
                break
            before = (oldest, "")


class TimedReader(ArchiveReader):
    """The gateway's reader, its keys step timed apart (``keys``: seconds since the last
    reset), so a page's time splits into its keys and the rest: the rows read by key (a
    heap page each, cold in a table larger than the page cache) and made objects."""

    keys = 0.0

    async def _keys(self, *args: Any) -> list[Any]:
        t0 = time.perf_counter()
        try:
            return await super()._keys(*args)
        finally:
            self.keys += time.perf_counter() - t0


async def measure(url: str, samples: int, start: datetime, days: int, batches: range) -> None:
    reader = TimedReader(url, pool_size=2)
    await reader.start()
    try:
        with psycopg.connect(url) as conn:
            names = conn.execute(
                f"SELECT namespace, name FROM {TABLE} TABLESAMPLE SYSTEM (0.1) LIMIT %s",
                (samples,),
            ).fetchall()
        for kind in KINDS:
            took: list[tuple[float, str, HistoryQuery, int]] = []
            keys: list[float] = []
            for _ in range(samples):
                namespace = f"team-{random.randrange(20):02d}"
                query = HistoryQuery.parse(filters(kind, start, days, batches))
                reader.keys = 0.0
                t0 = time.perf_counter()
                items, _ = await reader.page(namespace, query)
                took.append((time.perf_counter() - t0, namespace, query, len(items)))
                keys.append(reader.keys)
            times = [t[0] for t in took]
            mean_items = statistics.mean(t[3] for t in took)
            print(f"list {kind}: {spread(times)}; {mean_items:.0f} items a page ({load()})")
            rest = [t - k for t, k in zip(times, keys, strict=True)]
            print(f"  its keys step: {spread(keys)}")
            print(f"  the rest (rows by key, objects): {spread(rest)}")
            slowest = max(range(len(took)), key=lambda i: took[i][0])
            _, namespace, query, _ = took[slowest]
            print(
                f"  the slowest page: keys {keys[slowest] * 1000:.1f} ms, "
                f"rest {rest[slowest] * 1000:.1f} ms",
                flush=True,
            )
            print("  the slowest one again, EXPLAIN ANALYZE:")
            explain_keys(url, namespace, query)
        times = []
        for namespace, name in names:
            t0 = time.perf_counter()
            found = await reader.latest(namespace, name)
            times.append(time.perf_counter() - t0)
            assert found is not None
        print(f"get by name: {spread(times)} ({load()})", flush=True)
    finally:
        await reader.close()


def explain(conn: psycopg.Connection[Any], step: str, sql: str, params: list[Any]) -> None:
    plan = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params).fetchall()
    lines = [str(r[0]) for r in plan]
    print(f"  {step}:")
    for line in lines[:14] + (["  ..."] if len(lines) > 16 else []) + lines[-2:]:
        print("    " + line)


def oldest_day(url: str) -> date:
    with psycopg.connect(url) as conn:
        names = conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            (TABLE,),
        ).fetchall()
    return min(d for (name,) in names if (d := partition_day(str(name))) is not None)


async def listing(reader: ArchiveReader, stop: asyncio.Event, took: list[float]) -> None:
    """A reader listing a namespace's queue over and over until ``stop``."""
    while not stop.is_set():
        t0 = time.perf_counter()
        await reader.page("team-00", HistoryQuery.parse({"queue": "q-0"}))
        took.append(time.perf_counter() - t0)


async def retention(url: str, start: datetime, days: int) -> None:
    """Drop the oldest day as the operator's maintenance does (``maintain`` with a
    retention that expires that day alone): idle, then with a reader listing meanwhile."""
    archive = PostgresArchive(url)
    await archive.open()
    reader = ArchiveReader(url, pool_size=2)
    await reader.start()
    today = (start + timedelta(days=days - 1)).date()
    noon = datetime(today.year, today.month, today.day, 12, tzinfo=UTC)
    try:
        for busy in (False, True):
            keep = (today - oldest_day(url)).days - 1
            lat: list[float] = []
            stop = asyncio.Event()
            task = asyncio.create_task(listing(reader, stop, lat)) if busy else None
            await asyncio.sleep(1 if busy else 0)
            t0 = time.perf_counter()
            dropped = await archive.maintain(keep, noon)
            took = time.perf_counter() - t0
            await asyncio.sleep(1 if busy else 0)
            stop.set()
            if task is not None:
                await task
            during = f"; a reader listing meanwhile: {spread(lat)}" if busy else " (idle)"
            print(f"retention: dropped {dropped} in {took * 1000:.0f} ms{during}", flush=True)
    finally:
        await reader.close()
        await archive.close()


async def backfill_rate(url: str) -> None:
    """Migration 3's backfill of one day, timed: the oldest partition's copies set to NULL
    (as rows archived before migration 2 have them), vacuumed, then backfilled as the
    migration does (batches of pages, one transaction each)."""
    name = partition_name(oldest_day(url))
    (step,) = [m for m in MIGRATIONS if m.backfill]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute(f"UPDATE {name} SET labels_key = NULL".encode())
        await conn.execute(f"VACUUM {name}".encode())
        row = await (
            await conn.execute("SELECT count(*), pg_relation_size(%s) / 8192 FROM " + name, (name,))
        ).fetchone()
        assert row is not None
        t0 = time.perf_counter()
        updated = await backfill_partition(conn, step.backfill, name, int(row[1]))
        took = time.perf_counter() - t0
    print(
        f"backfill: {updated:,} of {int(row[0]):,} rows of {name} in {took:.1f} s "
        f"({updated / took:,.0f} rows/s; {int(row[1]):,} pages) ({load()})",
        flush=True,
    )


def query(workdir: Path, samples: int, drop: bool, lock: str | None, fill: bool) -> None:
    with server(workdir) as pg, heavy(lock):
        url = url_of(pg)
        with psycopg.connect(url, autocommit=True) as conn:
            saved = state(conn)
            report_size(conn)
        start, rows = datetime.fromisoformat(saved["start"]), int(saved["done"])
        # Rows fill the days in order: a generation stopped early (--stop-loading) fills
        # only the first days, and the time windows are drawn from those.
        days = max(1, int(saved["days"]) * rows // int(saved["rows"]))
        # Days a retention run dropped (--retention) are drawn from no more: the windows
        # and the rare labels (a batch is 1,000 rows in order) start at the oldest day kept.
        gone = max(0, (oldest_day(url) - start.date()).days)
        start, days = start + timedelta(days=gone), days - gone
        per_day = int(saved["rows"]) // int(saved["days"])
        batches = range(gone * per_day // 1000 + 1, rows // 1000)
        if gone:
            print(f"query: the {gone} oldest days were dropped; {days} days left", flush=True)
        asyncio.run(measure(url, samples, start, days, batches))
        if drop:
            asyncio.run(retention(url, start, days))
        if fill:
            asyncio.run(backfill_rate(url))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["generate", "query", "burst"])
    parser.add_argument("--workdir", type=Path, help="generate, query: the cluster's folder (kept)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1_000_000, help="rows per lock hold")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--lock", help="a file to flock while a chunk or measurement runs")
    parser.add_argument("--min-free-gib", type=int, default=8, help="generate stops below")
    parser.add_argument(
        "--stop-loading",
        action="store_true",
        help="generate: load no more rows; build the indexes over those there",
    )
    parser.add_argument("--samples", type=int, default=300)
    parser.add_argument("--retention", action="store_true", help="query: then drop days")
    parser.add_argument(
        "--backfill", action="store_true", help="query: then time migration 3 on the oldest day"
    )
    parser.add_argument("--tasks", type=int, default=600)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=32)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    if args.mode == "burst":
        with heavy(args.lock):
            bursts(args.tasks, args.rounds, args.parallel, args.concurrency, url_of)
        return 0
    if args.workdir is None:
        parser.error("--workdir is required for generate and query")
    if args.mode == "generate":
        generate(
            args.workdir,
            args.rows,
            args.chunk,
            args.days,
            args.lock,
            args.min_free_gib << 30,
            args.stop_loading,
        )
    else:
        query(args.workdir, args.samples, args.retention, args.lock, args.backfill)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
