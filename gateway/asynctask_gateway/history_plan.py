"""Which plan reads a label-selected page's keys (pure): the walk, then a bitmap of the rest.

Two plans answer ``labelSelector`` (docs/history.md, "Choosing the plan"):

* **the walk**: the keyset index ``(namespace, finished_at DESC, uid DESC) INCLUDE (queue,
  phase, creator, labels_key)`` read newest first, each entry judged from the index alone,
  stopping at the page's end. Its cost is the entries it passes, so it is fast when the
  selector matches often and slow when it matches rarely (a rare label with no time range
  passes every entry of the namespace);
* **the bitmap**: the GIN index on ``labels_key`` (with the partial index of rows without a
  copy) gives the matches, whose rows are then read and sorted. Its cost is the matches, so
  it is fast for a rare label and slow for a common one over a long range.

PostgreSQL cannot tell them apart: it has no statistics on a label inside ``jsonb`` and
takes a fixed 1% for ``@>``, so under a ``LIMIT`` it always walks. The reader therefore
walks first, for at most :data:`WALK_ENTRIES` entries (:func:`walk_statement`), which
measures the selector's frequency as a side effect. A walk that fills the page, or reaches
the range's end, is the answer. One that stops at its bound found fewer than a page in
:data:`WALK_ENTRIES` entries, so the selector is rare there (under one row in a hundred),
and the rest of the range is read by the bitmap (:func:`rest_statement`, with index scans
switched off around it, in the transaction only: :data:`BITMAP_ONLY`), newest first, over
a window sized from the frequency the walk saw (:func:`rest_window`): about twice what
should complete the page, so a selector that is merely uncommon does not read a month of
matches; if the window falls short, the rest of the range follows in one more statement.

Selectors without a positive term (``k!=v``, ``!k``, ``k in (…)`` only) have no bitmap
plan: they walk the whole range, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asynctask_gateway.history import TABLE, HistoryQuery

#: The entries a walk passes before the rest goes to the bitmap plan: about 5 ms of an
#: index-only scan on a warm cache; a selector that fills a page of 100 within it matches
#: at least one row in a hundred.
WALK_ENTRIES = 10_000
#: The bitmap window is this many times the span the walk's frequency says completes the
#: page (a margin for a frequency that varies along the range).
WINDOW_MARGIN = 2.0
_ORDER = "ORDER BY finished_at DESC, uid DESC"
#: Around :func:`rest_statement`: the bitmap, not an ordered walk of an index (which the
#: planner prefers under a LIMIT, not knowing how rare the label is); back on after.
BITMAP_ONLY = (
    b"SELECT set_config('enable_indexscan', 'off', true), "
    b"set_config('enable_indexonlyscan', 'off', true), set_config('enable_seqscan', 'off', true)"
)
BITMAP_DONE = (
    b"SELECT set_config('enable_indexscan', 'on', true), "
    b"set_config('enable_indexonlyscan', 'on', true), set_config('enable_seqscan', 'on', true)"
)

Key = tuple[datetime, str]


def _match(query: HistoryQuery) -> tuple[str, list[Any]]:
    """The page's conditions on what the keyset index holds; a row without a copy of its
    labels is a candidate (the rows step checks it on the full labels)."""
    conditions = [*query.conditions]
    if query.labels_key:
        conditions.append(f"(labels_key IS NULL OR ({' AND '.join(query.labels_key)}))")
    return " AND ".join(conditions) or "true", [*query.params, *query.label_params]


def walk_statement(
    namespace: str,
    query: HistoryQuery,
    after: Key | None,
    limit: int,
    entries: int = WALK_ENTRIES,
) -> tuple[str, list[Any]]:
    """The walk: at most ``entries`` entries of the namespace's range, newest
    first, from the keyset index alone. Rows ``(finished_at, uid, matched, edge)``: the
    matching ones, up to ``limit``, and the walk's last entry (``edge``) if it got there."""
    inner = ["namespace = %s"]
    inner_params: list[Any] = [namespace]
    if query.since is not None:
        inner.append("finished_at >= %s")
        inner_params.append(query.since)
    if query.until is not None:
        inner.append("finished_at < %s")
        inner_params.append(query.until)
    if after is not None:
        inner.append("(finished_at, uid) < (%s, %s)")
        inner_params += list(after)
    match, match_params = _match(query)
    sql = (
        "SELECT finished_at, uid, matched, n = %s AS edge FROM ("
        f"SELECT finished_at, uid, coalesce({match}, false) AS matched, "
        f"row_number() OVER ({_ORDER}) AS n FROM ("
        f"SELECT finished_at, uid, queue, phase, creator, labels_key FROM {TABLE} "
        f"WHERE {' AND '.join(inner)} {_ORDER} LIMIT %s) AS walk) AS judged "
        "WHERE matched OR n = %s LIMIT %s"
    )
    params = [entries, *match_params, *inner_params, entries, entries, limit]
    return sql, params


@dataclass(frozen=True)
class Walked:
    """What a walk found: the matching keys (newest first), and where it stopped short of
    a page with entries left behind (None: the page is full or the range is done)."""

    keys: list[Key]
    edge: Key | None


def judge(rows: list[tuple[Any, ...]], limit: int) -> Walked:
    """A walk's rows (:func:`walk_statement`) as its keys and its edge."""
    keys = [(r[0], r[1]) for r in rows if r[2]][:limit]
    edges = [(r[0], r[1]) for r in rows if r[3]]
    if len(keys) >= limit or not edges:
        return Walked(keys, None)
    return Walked(keys, edges[0])


def rest_window(walked: Walked, needed: int) -> timedelta | None:
    """How far back from the walk's edge the bitmap reads first: :data:`WINDOW_MARGIN`
    times the span in which the walk's frequency would find the ``needed`` keys; None
    (the whole rest) when the walk found none, so the selector is rarer than one in
    :data:`WALK_ENTRIES` and the rest holds few matches."""
    if not walked.keys or walked.edge is None:
        return None
    span = walked.keys[0][0] - walked.edge[0]
    if span <= timedelta(0):
        return None
    return span * (WINDOW_MARGIN * needed / len(walked.keys))


def rest_bounds(walked: Walked, needed: int, since: datetime | None) -> list[datetime | None]:
    """The oldest finish time of each bitmap statement after a walk stopped at its edge:
    the window (:func:`rest_window`), then the rest of the range (None: down to ``since``
    or the namespace's first row), each run only if the page is still short."""
    assert walked.edge is not None
    window = rest_window(walked, needed)
    if window is None:
        return [None]
    oldest = walked.edge[0] - window
    if since is not None and oldest <= since:
        return [None]
    return [oldest, None]


def rest_statement(
    namespace: str, query: HistoryQuery, before: Key, oldest: datetime | None, limit: int
) -> tuple[str, list[Any]]:
    """The bitmap plan (run between :data:`BITMAP_ONLY` and :data:`BITMAP_DONE`): keys of
    matching rows older than ``before`` (and not older than ``oldest``), newest first."""
    match, match_params = _match(query)
    conditions = ["namespace = %s", "(finished_at, uid) < (%s, %s)"]
    params: list[Any] = [namespace, *before]
    if oldest is not None:
        conditions.append("finished_at >= %s")
        params.append(oldest)
    sql = (
        f"SELECT finished_at, uid FROM {TABLE} WHERE {' AND '.join(conditions)} AND {match} "
        f"{_ORDER} LIMIT %s"
    )
    return sql, [*params, *match_params, limit]
