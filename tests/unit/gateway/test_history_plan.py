"""The plan of a label-selected page's keys (pure): a bounded walk, then a bitmap of the
rest sized by what the walk saw."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from asynctask_gateway.history import HistoryQuery
from asynctask_gateway.history_plan import (
    WALK_ENTRIES,
    WINDOWS,
    Walked,
    judge_walk,
    rest_bounds,
    rest_statement,
    rest_window,
    walk_statement,
)

T = datetime(2026, 12, 5, 12, tzinfo=UTC)
SELECTED = {
    "queue": "q",
    "phase": "Failed",
    "since": "2026-12-01T00:00:00Z",
    "until": "2026-12-05T00:00:00Z",
    "labelSelector": "team=a,tier!=db",
}


@pytest.mark.parametrize(
    ("selector", "indexed"),
    [
        ("team=a", True),
        ("team==a", True),
        ("team", True),
        ("tier!=db,team", True),
        ("tier!=db", False),
        ("!team", False),
        ("team in (a,b)", False),
        ("team notin (a)", False),
        ("", False),
    ],
)
def test_only_a_positive_term_has_a_bitmap_plan(selector: str, indexed: bool) -> None:
    assert HistoryQuery.parse({"labelSelector": selector}).label_indexed is indexed


INNER = (
    "FROM asynctask_history WHERE namespace = %s AND finished_at >= %s AND finished_at < %s "
    "AND (finished_at, uid) < (%s, %s) ORDER BY finished_at DESC, uid DESC"
)


def test_the_walk_is_bounded_and_reads_only_the_keyset_index() -> None:
    query = HistoryQuery.parse(SELECTED)
    after = (T, "u9")
    sql, params = walk_statement("ns", query, after, 101, entries=500)
    assert sql.count("%s") == len(params)
    # The inner scan: the namespace's range after the key, newest first, at most 500
    # entries, numbered in that order; the page's conditions judged on them; the matches
    # kept, and the 500th entry (the edge) whether it matches or not, at most 101 rows.
    assert sql.startswith(
        "SELECT finished_at, uid, hit, n = %s AS edge FROM (SELECT finished_at, uid, ("
    )
    assert (
        "row_number() OVER () AS n FROM (SELECT finished_at, uid, queue, phase, creator, "
        f"labels_key {INNER} LIMIT %s) AS walk) AS judged WHERE hit OR n = %s LIMIT %s"
    ) in sql
    assert sql.endswith("LIMIT %s")
    assert not re.search(r"\blabels\b", sql)
    assert "(labels_key IS NULL OR (" in sql  # a row without the copy is a candidate
    assert params == [
        500,
        *query.params,
        *query.label_params,
        "ns",
        query.since,
        query.until,
        *after,
        500,
        500,
        101,
    ]
    assert walk_statement("ns", query, None, 11)[1][-3] == WALK_ENTRIES


def test_a_walks_rows_give_its_keys_and_its_edge() -> None:
    a, b, c = (T - timedelta(minutes=m) for m in (1, 2, 3))
    # Matches only: the page is full or the range ended; no edge.
    assert judge_walk([(a, "a", True, False), (b, "b", True, False)]) == (
        [(a, "a"), (b, "b")],
        None,
    )
    # The walk's last entry, not a match: the edge alone.
    assert judge_walk([(a, "a", True, False), (c, "c", None, True)]) == ([(a, "a")], (c, "c"))
    assert judge_walk([(c, "c", False, True)]) == ([], (c, "c"))
    # The last entry a match too: a key and the edge.
    assert judge_walk([(c, "c", True, True)]) == ([(c, "c")], (c, "c"))
    assert judge_walk([]) == ([], None)


def keys(*minutes: int) -> list[tuple[datetime, str]]:
    return [(T - timedelta(minutes=m), f"u{m}") for m in minutes]


def test_the_bitmap_window_comes_from_the_walks_frequency() -> None:
    # 4 matches from minute 1 to the edge at minute 21: one per 5 minutes; 10 more needed
    # take 50 minutes, twice that is the window.
    walked = Walked(keys(1, 6, 11, 16), keys(21)[0])
    assert rest_window(walked, 10) == timedelta(minutes=100)
    edge = keys(21)[0][0]
    # Then windows twice as long as all before (100, 200, 400, ... minutes), at most
    # WINDOWS statements, the last one the rest of the range.
    reach = [100, 300, 700, 1500, 3100]
    assert len(reach) == WINDOWS - 1
    assert rest_bounds(walked, 10, None) == [edge - timedelta(minutes=m) for m in reach] + [None]
    # A window reaching past `since` is the rest of the range.
    assert rest_bounds(walked, 10, edge - timedelta(minutes=30)) == [None]
    since = edge - timedelta(minutes=500)
    assert rest_bounds(walked, 10, since) == [edge - timedelta(minutes=m) for m in reach[:2]] + [
        None
    ]
    # No match in the walk: rarer than one in WALK_ENTRIES, the whole rest at once.
    assert rest_window(Walked([], keys(21)[0]), 10) is None
    assert rest_window(Walked(keys(21), keys(21)[0]), 10) is None  # no span to measure
    # One match in a year's walk: a window of millennia is the whole rest.
    year = Walked(keys(1), (T - timedelta(days=365), "u"))
    assert rest_window(year, 2000) is None and rest_bounds(year, 2000, None) == [None]
    assert rest_bounds(Walked([], keys(21)[0]), 10, None) == [None]


def test_the_rest_statement_is_bounded_by_the_edge_and_the_window() -> None:
    query = HistoryQuery.parse(SELECTED)
    before, oldest = keys(21)[0], T - timedelta(hours=3)
    sql, params = rest_statement("ns", query, before, oldest, 40)
    assert sql.count("%s") == len(params)
    assert sql.startswith(
        "SELECT finished_at, uid FROM asynctask_history WHERE namespace = %s "
        "AND (finished_at, uid) < (%s, %s) AND finished_at >= %s AND "
    )
    assert sql.endswith("ORDER BY finished_at DESC, uid DESC LIMIT %s")
    assert params == ["ns", *before, oldest, *query.params, *query.label_params, 40]
    # Without a window: down to the range's start (`since`, among the query's conditions).
    sql, params = rest_statement("ns", query, before, None, 40)
    assert sql.count("%s") == len(params)
    assert params == ["ns", *before, *query.params, *query.label_params, 40]
