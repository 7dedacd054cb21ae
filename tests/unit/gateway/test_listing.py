"""Listing from the cache: label selectors, filters and pagination."""

from __future__ import annotations

import pytest

from asynctask_gateway.cache import Entry, project
from asynctask_gateway.listing import Query, decode_continue, page, parse_selector


def entry(name: str, queue: str = "q", phase: str | None = None, **labels: str) -> Entry:
    return project(
        {
            "metadata": {"name": name, "namespace": "ns", "labels": labels},
            "spec": {"queue": queue},
            "status": {"phase": phase} if phase else {},
        }
    )


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {"a": "c"}, True),
        ("a!=b", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("a in (x, y)", {"a": "y"}, True),
        ("a notin (x,y)", {"a": "y"}, False),
        ("a=b,c in (1,2)", {"a": "b", "c": "2"}, True),
        ("a=b,c in (1,2)", {"a": "b"}, False),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_selector(selector)(labels) is expected


@pytest.mark.parametrize("selector", ["a=(b)", "=b", "a in x", "!a in (x)"])
def test_bad_selectors_are_refused(selector: str) -> None:
    with pytest.raises(ValueError, match="selector"):
        parse_selector(selector)


def test_pages_walk_every_match_once_in_name_order() -> None:
    entries = [entry(f"t{i}", queue="a" if i % 2 else "b", team="x") for i in range(7)]
    query = Query.parse({"queue": "a", "labelSelector": "team=x", "limit": "2"})
    names, pages = [], 0
    while True:
        items, token = page(entries, query)
        names += [e.view.name for e in items]
        pages += 1
        if token is None:
            break
        query = Query.parse(
            {"queue": "a", "labelSelector": "team=x", "limit": "2", "continue": token}
        )
        assert decode_continue(token) == names[-1]
    assert names == ["t1", "t3", "t5"] and pages == 2


def test_phase_filter() -> None:
    entries = [entry("a", phase="Succeeded"), entry("b", phase="Processing"), entry("c")]
    items, _ = page(entries, Query.parse({"phase": "Pending"}))
    assert [e.view.name for e in items] == ["c"]


@pytest.mark.parametrize(
    ("params", "word"),
    [
        ({"phase": "Done"}, "phase"),
        ({"limit": "0"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"continue": "%%%"}, "continue"),
    ],
)
def test_bad_queries_name_the_parameter(params: dict[str, str], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        Query.parse(params)
