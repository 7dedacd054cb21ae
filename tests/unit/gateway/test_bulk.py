"""Bulk actions' pure parts in the gateway: a selector that selects everything is refused,
the query is parsed like a list's, and the document describes both routes exactly."""

from __future__ import annotations

import pytest

from asynctask_gateway import patterns
from asynctask_gateway.bulk import bulk_query
from asynctask_gateway.cache import Entry, project
from asynctask_gateway.listing import SelectorRequired, page, parse_required_selector
from asynctask_gateway.openapi import build_document
from asynctask_gateway.problems import Problem

TASKS = "/v1/namespaces/{namespace}/tasks"


def entry(name: str, **labels: str) -> Entry:
    return project({"metadata": {"name": name, "namespace": "ns", "labels": labels}})


@pytest.mark.parametrize("selector", ["", " ", ",", " , ,\t", "\n"])
def test_a_selector_without_a_term_is_refused(selector: str) -> None:
    with pytest.raises(SelectorRequired):
        parse_required_selector(selector)
    assert not patterns.matches(patterns.BULK_SELECTOR, selector)
    assert patterns.matches(patterns.LABEL_SELECTOR, selector)  # a list accepts it


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("team=x", {"team": "x"}, True),
        ("team=x", {"team": "y"}, False),
        (",team=x,", {"team": "x"}, True),
        ("team in (x,y),!frozen", {"team": "y"}, True),
        ("team in (x,y),!frozen", {"team": "y", "frozen": ""}, False),
    ],
)
def test_a_bulk_selector_matches_like_a_list_selector(
    selector: str, labels: dict[str, str], expected: bool
) -> None:
    assert patterns.matches(patterns.BULK_SELECTOR, selector)
    assert parse_required_selector(selector)(labels) is expected


def test_a_term_of_other_white_space_is_a_key_never_dropped() -> None:
    """Python's str.strip() would call U+001C white space and drop the term, leaving a
    selector that matches everything; the bulk parser keeps it as a key no task has."""
    selector = "\x1c"
    assert patterns.matches(patterns.BULK_SELECTOR, selector)
    assert parse_required_selector(selector)({"team": "x"}) is False


@pytest.mark.parametrize(
    ("params", "reason"),
    [
        ({}, "SelectorRequired"),
        ({"labelSelector": " , "}, "SelectorRequired"),
        ({"labelSelector": "a=b=c"}, "BadRequest"),
        ({"labelSelector": "a=b", "limit": "0"}, "BadRequest"),
        ({"labelSelector": "a=b", "continue": "!"}, "BadRequest"),
    ],
)
def test_a_bad_bulk_query_is_a_400_problem(params: dict[str, str], reason: str) -> None:
    with pytest.raises(Problem) as caught:
        bulk_query(params)
    assert (caught.value.status, caught.value.reason) == (400, reason)


def test_a_bulk_query_pages_by_name_with_continue() -> None:
    entries = [entry(f"t{i}", team="x" if i % 2 else "y") for i in range(7)]
    first, token = page(entries, bulk_query({"labelSelector": "team=x", "limit": "2"}))
    assert [e.view.name for e in first] == ["t1", "t3"] and token
    rest, end = page(entries, bulk_query({"labelSelector": "team=x", "continue": token}))
    assert [e.view.name for e in rest] == ["t5"] and end is None


@pytest.mark.parametrize(("operation", "verb"), [("cancel", "patch"), ("delete", "delete")])
def test_the_document_describes_both_bulk_routes(operation: str, verb: str) -> None:
    op = build_document()["paths"][f"{TASKS}:{operation}"]["post"]
    assert op["operationId"] == f"{operation}Tasks"
    assert op["x-kubernetes-verbs"] == ["list", verb]
    params = {p["name"]: p for p in op["parameters"]}
    assert params["labelSelector"]["required"] is True
    assert params["labelSelector"]["schema"]["pattern"] == patterns.BULK_SELECTOR
    assert {"limit", "continue", "namespace"} <= set(params)
    body = op["responses"]["200"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/BulkAnswer"}
    assert "SelectorRequired" in op["responses"]["400"]["description"]
    assert "requestBody" not in op
