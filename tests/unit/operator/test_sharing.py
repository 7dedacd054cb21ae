"""What many tasks hold alike is held once (sharing.py), and equal to what it replaces."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from asynctask_operator import status as st
from asynctask_operator.sharing import Shared, pack_request, parse_spec
from asynctask_worker.messages import MAX_REQUEST_DEPTH

NOW = datetime(2026, 11, 24, 10, 0, 0, tzinfo=UTC)


def parsed(status: dict[str, Any]) -> dict[str, Any]:
    """A status as a watch event brings it: a fresh tree of its own."""
    result: dict[str, Any] = json.loads(json.dumps(status))
    return result


def test_a_shared_status_equals_the_original() -> None:
    status = st.pending({}, "task:uid-1:1", NOW, 1)
    assert Shared().status(parsed(status)) == status


def test_tasks_that_changed_in_the_same_second_share_their_conditions_and_strings() -> None:
    shared = Shared()
    one = shared.status(parsed(st.pending({}, "task:uid-1:1", NOW, 1)))
    two = shared.status(parsed(st.pending({}, "task:uid-2:1", NOW, 1)))
    assert one["conditions"] is two["conditions"]
    assert one["message"] is two["message"]
    assert next(iter(one)) is next(iter(two))  # the keys too
    assert one["messageId"] != two["messageId"]


def test_conditions_of_another_second_are_not_taken_for_the_same() -> None:
    shared = Shared()
    one = shared.status(parsed(st.pending({}, "m", NOW, 1)))
    later = NOW.replace(second=1)
    two = shared.status(parsed(st.pending({}, "m", later, 1)))
    assert one["conditions"] is not two["conditions"]
    assert two["conditions"][0]["lastTransitionTime"] == "2026-11-24T10:00:01Z"


def test_odd_conditions_are_kept_as_they_are() -> None:
    status = {"phase": "Pending", "conditions": [{"type": "Ready", "extra": {"nested": 1}}]}
    assert Shared().status(status) == status


def test_long_strings_are_not_pooled() -> None:
    shared = Shared()
    text = "x" * 1000
    assert shared.text(text) is text
    assert len(shared) == 0


def test_the_pool_is_bounded() -> None:
    shared = Shared(limit=32)
    for i in range(1000):
        assert shared.text(f"message {i}") == f"message {i}"
    assert len(shared) <= 32


def test_equal_specs_are_parsed_once_and_held_without_their_request() -> None:
    shared = Shared()
    one, error = shared.spec({"queue": "hello", "request": {"n": 1}, "retries": 2})
    two, _ = shared.spec({"retries": 2, "request": {"n": 2}, "queue": "hello"})
    assert error == "" and one is not None and one is two
    assert one.request is None and one.retries == 2


def test_an_invalid_spec_says_what_is_wrong_as_parse_spec_does() -> None:
    raw = {"queue": "Not A Queue!", "request": {"n": 1}}
    spec, error = Shared().spec(raw)
    assert spec is None and error == parse_spec(raw)[1] and error.startswith("spec.queue: ")


def test_a_missing_spec_is_an_invalid_one() -> None:
    spec, error = Shared().spec(None)
    assert spec is None and "spec.queue" in error


def test_the_request_is_kept_as_compact_json_with_its_depth() -> None:
    assert pack_request({"queue": "q", "request": {"a": [1, {"b": 2}]}}) == (
        '{"a":[1,{"b":2}]}',
        3,
    )
    assert pack_request({"queue": "q"}) == (None, 0)
    assert pack_request({"queue": "q", "request": None}) == (None, 0)
    assert pack_request({"queue": "q", "request": 7}) == ("7", 0)


def test_a_request_too_deep_for_the_wire_is_not_encoded() -> None:
    deep: Any = "leaf"
    for _ in range(MAX_REQUEST_DEPTH + 5):
        deep = [deep]
    assert pack_request({"request": deep}) == (None, MAX_REQUEST_DEPTH + 5)
