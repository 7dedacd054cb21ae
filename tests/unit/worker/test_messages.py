"""The wire contract: round trips, deterministic ids, refusal of malformed input."""

from __future__ import annotations

import json

import pytest

from asynctask_worker.messages import (
    ControlMessage,
    MalformedMessage,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    encode,
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


@pytest.mark.parametrize("body", [
    b"", b"not json", b"[]",
    b'{"kind": "task", "task": {"uid": "u", "namespace": "n", "name": "x"}, '
    b'"phase": "Processing"}',
    b'{"v": 2, "kind": "status", "task": {"uid": "u", "namespace": "n", "name": "x"}, '
    b'"phase": "Processing"}',
    b'{"kind": "status", "task": {"uid": "u", "namespace": "n", "name": "x"}, '
    b'"phase": "Done"}',
    b'{"kind": "status", "task": {"uid": "u", "namespace": "n", "name": "x"}, '
    b'"phase": "Processing", "progress": 101}',
])
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
        "Succeeded", "Failed", "Error", "Cancelled", "TimedOut"}
