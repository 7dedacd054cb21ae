"""Malformed broker messages for the fuzz test, made by mutating real ones (deterministic).

Each :class:`Fuzzed` message is checked here, before it is sent, to be one the wire
contract refuses (:func:`asynctask_worker.messages.decode` raises), and carries the reason
its consumer must give when it dead-letters it. A mutation that happens to leave a valid
message is drawn again, so every message sent is bad and its expected reason is known.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asynctask_worker.messages import (
    MalformedMessage,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    encode,
)

Doc = dict[str, Any]


@dataclass
class Fuzzed:
    category: str
    body: bytes
    reason: str  # what the consumer must say in x-asynctask-dead-reason
    message_id: str | None = None
    headers: dict[str, Any] | None = None
    props: str = "real"  # which header mutation: real, none, garbage-headers, garbage-id
    extra: dict[str, Any] = field(default_factory=dict)


def _ref(rng: random.Random, namespace: str) -> TaskRef:
    return TaskRef(
        uid=f"ghost-{rng.randrange(10**12):012d}",
        namespace=namespace,
        name=f"ghost-{rng.randrange(10**6)}",
    )


def real_task(rng: random.Random, namespace: str, queue: str) -> TaskMessage:
    return TaskMessage(
        task=_ref(rng, namespace),
        queue=queue,
        request={"n": rng.random()},
        attempt=rng.randint(1, 3),
        timeout_seconds=rng.choice([None, 30]),
    )


def real_status(rng: random.Random, namespace: str) -> StatusMessage:
    phase = rng.choice(list(Phase))
    return StatusMessage(
        task=_ref(rng, namespace),
        attempt=1,
        seq=rng.randint(0, 9),
        phase=phase,
        progress=rng.choice([None, rng.randint(0, 100)]),
        message="fuzz",
        worker="fuzz-worker",
    )


WRONG_VALUES: list[Any] = ["abc", [], {}, -5, 0, 1.5, None, True, {"nested": [1, {"x": None}]}]
BAD_REFS: list[Any] = [
    "a string",
    [],
    {},
    {"uid": ""},
    {"uid": "u", "namespace": "Bad_NS!", "name": "n"},
    {"uid": "u", "namespace": "ns", "name": "../../etc/passwd"},
    {"uid": "u/../x", "namespace": "ns", "name": "n"},
    {"uid": "u", "namespace": "n" * 64, "name": "n"},
]


def _wrong_type(rng: random.Random, doc: Doc) -> Doc:
    key = rng.choice([k for k in doc if k not in ("v", "kind", "request", "result")])
    value: Any = rng.choice(BAD_REFS if key == "task" else WRONG_VALUES)
    if key in ("message", "worker") and rng.random() < 0.5:
        value = "m" * 5000  # over its length limit
    return {**doc, key: value}


def _missing(rng: random.Random, doc: Doc) -> Doc:
    required = ["task", "queue"] if doc["kind"] == "task" else ["task", "phase"]
    return {k: v for k, v in doc.items() if k != rng.choice(required)}


def _version(rng: random.Random, doc: Doc) -> Doc:
    return {**doc, "v": rng.choice([0, 2, 99, "1", None, -1, 1.0001])}


def _kind(rng: random.Random, doc: Doc) -> Doc:
    wrong = {"task": ["status", "control"], "status": ["task", "control"]}[doc["kind"]]
    return {**doc, "kind": rng.choice([*wrong, "", "TASK", 7])}


DEEP = "__deep__"


def _deep(rng: random.Random, doc: Doc) -> Doc:
    """A placeholder where :func:`mutate` puts JSON nested 300-3,000 levels deep."""
    return {**doc, "request" if doc["kind"] == "task" else "result": DEEP}


def _nested(rng: random.Random) -> bytes:
    depth = rng.randint(300, 3000)
    opens = [rng.choice([b"[", b'{"d":']) for _ in range(depth)]
    closes = [b"]" if o == b"[" else b"}" for o in reversed(opens)]
    return b"".join(opens) + b"1" + b"".join(closes)


JSON_MUTATIONS: dict[str, Callable[[random.Random, Doc], Doc]] = {
    "wrong-type": _wrong_type,
    "missing-field": _missing,
    "unknown-version": _version,
    "wrong-kind": _kind,
    "deep": _deep,
}


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


def _bytes_mutation(rng: random.Random, category: str, body: bytes) -> bytes:
    if category == "not-json":
        return rng.choice(
            [
                body[: rng.randrange(len(body))],
                b"{not json}",
                b"",
                b"   ",
                b'{"v": 1,}',
                b"NaN",
                body.replace(b'"', b"'"),
                b'{"v": 1, "kind": "task"' + b" " * 100,
            ]
        )
    if category == "not-utf8":
        at = rng.randrange(len(body))
        return body[:at] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"]) + body[at:]
    if category == "not-object":
        return rng.choice([b"[]", b"42", b'"a string"', b"null", b"true", b"[1, 2, 3]", b"-0.0"])
    if category == "huge":
        size = rng.randint(200_000, 1_500_000)
        return rng.choice(
            [
                b'{"v": 1, "garbage": "' + b"x" * size,  # not JSON, and big
                _dumps(
                    {**json.loads(body), "task": {"uid": "u" * size, "namespace": "n", "name": "n"}}
                ),
            ]
        )
    raise ValueError(category)


CATEGORIES = [*JSON_MUTATIONS, "not-json", "not-utf8", "not-object", "huge"]


def mutate(rng: random.Random, category: str, real: TaskMessage | StatusMessage) -> bytes:
    body = encode(real)
    if category in JSON_MUTATIONS:
        out = _dumps(JSON_MUTATIONS[category](rng, json.loads(body)))
        return out.replace(f'"{DEEP}"'.encode(), _nested(rng)) if category == "deep" else out
    return _bytes_mutation(rng, category, body)


def _props(
    rng: random.Random, real_id: str, real_headers: dict[str, Any] | None
) -> tuple[str, str | None, dict[str, Any] | None]:
    kind = rng.choice(["real", "real", "none", "garbage-headers", "garbage-id"])
    if kind == "real":
        return kind, real_id, real_headers
    if kind == "none":
        return kind, None, None
    if kind == "garbage-id":
        return (
            kind,
            rng.choice(
                ["task:::", "\U0001f4a5", "task:x:y:z", "status:", "x" * 200, "task:not-a-uid!:1"]
            ),
            real_headers,
        )
    return (
        kind,
        real_id,
        {
            "asynctask-uid": rng.choice([123, b"\xff\xfe", "", "ghost", ["a"]]),
            "asynctask-namespace": rng.choice([b"\xff", "Bad NS", None, {"t": 1}]),
            "asynctask-attempt": rng.choice(["one", -1, 2**40, None]),
            "x-death": rng.choice(["garbage", 5, [1, 2], [{"reason": 7}]]),
            "x-delivery-count": rng.choice(["lots", -3, None]),
            "x-fuzz": {"nested": {"deeper": [1, "two", None, True]}},
        },
    )


def _task_headers(msg: TaskMessage) -> dict[str, Any]:
    return {
        "asynctask-uid": msg.task.uid,
        "asynctask-namespace": msg.task.namespace,
        "asynctask-name": msg.task.name,
        "asynctask-attempt": msg.attempt,
    }


def generate(rng: random.Random, flow: str, namespace: str, queue: str, n: int) -> list[Fuzzed]:
    """``n`` bad messages for ``flow`` ("task": a task queue, "status": the status queue),
    spread evenly over the categories (the task flow adds ``no-handler``)."""
    categories = [c for c in CATEGORIES if c != "huge"] + (["no-handler"] if flow == "task" else [])
    out: list[Fuzzed] = []
    while len(out) < n:
        # Huge bodies (0.2-1.5 MB) one in 40, to keep the run short.
        category = "huge" if len(out) % 40 == 39 else categories[len(out) % len(categories)]
        real: TaskMessage | StatusMessage = (
            real_task(rng, namespace, queue) if flow == "task" else real_status(rng, namespace)
        )
        if category == "no-handler":
            assert isinstance(real, TaskMessage)
            body, reason = (
                encode(real.model_copy(update={"queue": "nobody-serves-this"})),
                "NoHandler",
            )
        else:
            body = mutate(rng, category, real)
            try:
                decode(TaskMessage if flow == "task" else StatusMessage, body)
                continue  # still valid: draw again
            except MalformedMessage as exc:
                reason = exc.reason
        headers = _task_headers(real) if isinstance(real, TaskMessage) else None
        props, message_id, headers = _props(rng, real.message_id, headers)
        out.append(Fuzzed(category, body, reason, message_id, headers, props))
    return out
