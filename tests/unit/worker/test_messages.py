"""The wire contract: round trips, deterministic ids, refusal of malformed input."""

from __future__ import annotations

import json

import pytest

from asynctask_worker.messages import (
    MAX_REQUEST_DEPTH,
    ControlMessage,
    MalformedMessage,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    encode,
    json_depth,
)

REF = TaskRef(uid="0b5a", namespace="default", name="hello")


def test_task_message_round_trip_and_deterministic_id() -> None:
    m = TaskMessage(task=REF, queue="hello", request={"a": [1, 2]}, timeout_seconds=5)
    back = decode(TaskMessage, encode(m))
    assert back == m
    assert m.message_id == "task:0b5a:1" == TaskMessage(task=REF, queue="x").message_id
    assert TaskMessage(task=REF, queue="x", attempt=2).message_id == "task:0b5a:2"


def test_status_message_ids_follow_attempt_and_seq() -> None:
    m = StatusMessage(task=REF, attempt=2, seq=7, phase=Phase.PROCESSING, progress=5)
    assert m.message_id == "status:0b5a:2:7"
    assert decode(StatusMessage, encode(m)).progress == 5


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"kind": "task", "task": {"uid": "u", "namespace": "n", "name": "x"}, '
        b'"phase": "Processing"}',
        b'{"v": 2, "kind": "status", "task": {"uid": "u", "namespace": "n", "name": "x"}, '
        b'"phase": "Processing"}',
        b'{"kind": "status", "task": {"uid": "u", "namespace": "n", "name": "x"}, "phase": "Done"}',
        b'{"kind": "status", "task": {"uid": "u", "namespace": "n", "name": "x"}, '
        b'"phase": "Processing", "progress": 101}',
    ],
)
def test_malformed_status_messages_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        decode(StatusMessage, body)


def test_kinds_do_not_mix() -> None:
    # A complete task message but for its kind: the kind alone refuses it.
    body = json.loads(encode(TaskMessage(task=REF, queue="q")))
    body["kind"] = "control"
    with pytest.raises(MalformedMessage, match="kind"):
        decode(TaskMessage, json.dumps(body).encode())
    assert decode(TaskMessage, encode(TaskMessage(task=REF, queue="q"))).queue == "q"
    control = ControlMessage(action="cancel", task=REF)
    with pytest.raises(MalformedMessage):
        decode(TaskMessage, encode(control))


def test_terminal_phases() -> None:
    assert {p.value for p in Phase if p.terminal} == {
        "Succeeded",
        "Failed",
        "Error",
        "Cancelled",
        "TimedOut",
    }


def _good_task() -> dict[str, object]:
    return dict(json.loads(encode(TaskMessage(task=REF, queue="hello"))))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe{}", "NotUtf8"),
        (b"{not json", "NotJson"),
        (b"", "NotJson"),
        (b"[1, 2]", "NotAnObject"),
        (b'{"request": ' + b"[" * 300 + b"]" * 300 + b"}", "TooDeep"),
        (json.dumps({**_good_task(), "v": 2}).encode(), "UnknownVersion"),
        (json.dumps({**_good_task(), "kind": "status"}).encode(), "WrongKind"),
        (json.dumps({**_good_task(), "attempt": "one"}).encode(), "InvalidFields"),
    ],
)
def test_a_malformed_message_says_in_one_word_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedMessage) as caught:
        decode(TaskMessage, body)
    assert caught.value.reason == reason


def test_a_request_as_deep_as_the_operator_allows_crosses_the_wire() -> None:
    deep: object = "leaf"
    for i in range(MAX_REQUEST_DEPTH):
        deep = {"k": deep} if i % 2 else [deep]
    assert json_depth(deep) == MAX_REQUEST_DEPTH
    msg = TaskMessage(task=REF, queue="hello", request=deep)
    assert decode(TaskMessage, encode(msg)).request == deep


def test_json_depth_counts_containers_without_recursing() -> None:
    assert json_depth(1) == 0 and json_depth([]) == 1 and json_depth({"a": [1, {}]}) == 3
    deep: object = 1
    for _ in range(100_000):
        deep = [deep]
    assert json_depth(deep) == 100_000
