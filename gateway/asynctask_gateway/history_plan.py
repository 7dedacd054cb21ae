"""Which plan reads a label-selected page's keys (pure): the walk, then a bitmap of the rest.

Two plans answer ``labelSelector`` (docs/history.md, "Choosing the plan"):

* **the walk**: the keyset index ``(namespace, finished_at DESC, uid DESC) INCLUDE (queue,
  phase, creator, labels_key)`` read newest first, each entry judged from the index alone,
  stopping at the page's end. Its cost is the entries it passes, so it is fast when the
  selector matches often and slow when it matches rarely (a rare label with no time range
  passes every entry of the namespace);
* **the bitmap**: the GIN index on ``(namespace, queue, phase, labels_key)`` (with the
  partial index of rows without a copy) gives the matches, whose rows are then read and
  sorted. Its cost is the matches, so it is fast for a rare label and slow for a common
  one over a long range.

PostgreSQL cannot tell them apart: its statistics describe whole label sets (the column's
common values and histogram), not one key among several, and under a ``LIMIT`` it walks
(measured: 138 ms for a rare label over 3 days, where the bitmap took 2 ms). The reader therefore
walks first, for at most :data:`WALK_ENTRIES` entries (:func:`walk_statement`), which
measures the selector's frequency as a side effect. A walk that fills the page, or
reaches the range's end, is the answer (the walk's statement also gives its last entry,
its edge, when it gets there: :func:`judge_walk`). One that stops
at its bound found fewer than a page in :data:`WALK_ENTRIES` entries, so the selector is
rare there (under one row in a hundred), and the rest of the range is read by the bitmap
(:func:`rest_statement`, with index scans switched off around it, in the transaction
only: :data:`BITMAP_ONLY`), newest first, over a window sized from the frequency the walk
saw (:func:`rest_window`): about twice what should complete the page, so a selector that
is merely uncommon does not read a month of matches; if the window falls short, windows
twice as long as all before follow (:func:`rest_bounds`).

The GIN index (migration 4) holds the namespace, queue and phase beside the labels
(``btree_gin``): :func:`rest_statement` puts those terms in the same statement as the
label's, so the planner ANDs them inside the index and a bitmap reads the namespace's
matches only. Where the extension could not be created, the index holds labels alone and
the same statement reads a label's matches in every namespace of the window's days (the
windows bound how many days that is).

Selectors without a positive term (``k!=v``, ``!k``, ``k in (…)`` only) have no bitmap
plan: they walk the whole range, as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asynctask_gateway.history import TABLE, HistoryQuery

#: The entries a walk passes before the rest goes to the bitmap plan (an index-only scan:
#: 8-27 ms measured on the loaded bench machine); a selector that fills a page of 100
#: within it matches at least one row in a hundred.
WALK_ENTRIES = 10_000
#: The bitmap window is this many times the span the walk's frequency says completes the
#: page (a margin for a frequency that varies along the range).
WINDOW_MARGIN = 2.0
_ORDER = "ORDER BY finished_at DESC, uid DESC"
#: At most this many bitmap statements after a walk (the last one: the rest of the range).
WINDOWS = 6
#: A window at least this long is the whole rest (and no date arithmetic past year 1).
_LONGEST = timedelta(days=3650)
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


def _walk_range(namespace: str, query: HistoryQuery, after: Key | None) -> tuple[str, list[Any]]:
    """The entries a walk passes: the namespace's range after ``after``, newest first."""
    inner = ["namespace = %s"]
    params: list[Any] = [namespace]
    if query.since is not None:
        inner.append("finished_at >= %s")
        params.append(query.since)
    if query.until is not None:
        inner.append("finished_at < %s")
        params.append(query.until)
    if after is not None:
        inner.append("(finished_at, uid) < (%s, %s)")
        params += list(after)
    return f"FROM {TABLE} WHERE {' AND '.join(inner)} {_ORDER}", params


def walk_statement(
    namespace: str,
    query: HistoryQuery,
    after: Key | None,
    limit: int,
    entries: int = WALK_ENTRIES,
) -> tuple[str, list[Any]]:
    """The walk, one pass over the keyset index alone: among the next ``entries`` entries
    of the namespace's range after ``after`` (newest first), the matching rows' keys, at
    most ``limit`` rows in all, the last of those entries among them when the walk gets
    there (its edge: where the range goes on). Rows ``(finished_at, uid, hit, edge)``:
    :func:`judge_walk` reads them."""
    walk, walk_params = _walk_range(namespace, query, after)
    match, match_params = _match(query)
    sql = (
        "SELECT finished_at, uid, hit, n = %s AS edge FROM ("
        f"SELECT finished_at, uid, ({match}) AS hit, row_number() OVER () AS n FROM ("
        f"SELECT finished_at, uid, queue, phase, creator, labels_key {walk} LIMIT %s"
        ") AS walk) AS judged WHERE hit OR n = %s LIMIT %s"
    )
    return sql, [entries, *match_params, *walk_params, entries, entries, limit]


def judge_walk(rows: list[tuple[Any, ...]]) -> tuple[list[Key], Key | None]:
    """A walk's rows (:func:`walk_statement`): the matching keys, newest first, and its
    edge when it stopped at its bound (None: it filled the page first, or the range ended
    before the bound, and either way the keys are the answer)."""
    keys = [(r[0], r[1]) for r in rows if r[2]]
    edges = [(r[0], r[1]) for r in rows if r[3]]
    return keys, edges[0] if edges else None


@dataclass(frozen=True)
class Walked:
    """A walk that stopped at its bound short of a page: the matching keys it found
    (newest first), and its last entry (``edge``), where the rest of the range starts."""

    keys: list[Key]
    edge: Key


def rest_window(walked: Walked, needed: int) -> timedelta | None:
    """How far back from the walk's edge the bitmap reads first: :data:`WINDOW_MARGIN`
    times the span in which the walk's frequency would find the ``needed`` keys; None
    (the whole rest) when the walk found none, so the selector is rarer than one in
    :data:`WALK_ENTRIES` and the rest holds few matches."""
    if not walked.keys:
        return None
    span = walked.keys[0][0] - walked.edge[0]
    if span <= timedelta(0):
        return None
    window = span * (WINDOW_MARGIN * needed / len(walked.keys))
    return window if window < _LONGEST else None


def rest_bounds(walked: Walked, needed: int, since: datetime | None) -> list[datetime | None]:
    """The oldest finish time of each bitmap statement after a walk stopped at its edge,
    each run only while the page is still short: the window (:func:`rest_window`), then
    windows twice as long as all before them (so a frequency that drops along the range
    costs a few more statements, never one read of every match of a month), at most
    :data:`WINDOWS`; the last is None (down to ``since`` or the namespace's first row)."""
    window = rest_window(walked, needed)
    if window is None:
        return [None]
    bounds: list[datetime | None] = []
    reach = window
    while len(bounds) < WINDOWS - 1 and reach < _LONGEST:
        oldest = walked.edge[0] - reach
        if since is not None and oldest <= since:
            break
        bounds.append(oldest)
        reach = reach * 2 + window
    return [*bounds, None]


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
