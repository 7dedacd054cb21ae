"""The wire contract's JSON Schemas (docs/protocol/schemas/) are the models' and say what the
parsers accept: messages the SDK builds pass them, invalid ones fail them and the parser
alike, and a field nobody knows is accepted and ignored, as docs/protocol.md says."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from jsonschema import Draft202012Validator

from asynctask_worker import App, TaskContext, TaskFailed
from asynctask_worker import schemas as wire_schemas
from asynctask_worker.messages import (
    SCHEMA_VERSION,
    ControlMessage,
    MalformedMessage,
    Phase,
    StatusMessage,
    TaskMessage,
    TaskRef,
    decode,
    encode,
)
from asynctask_worker.testing import StubBroker

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = REPO / "docs" / "protocol" / "schemas"
REF = TaskRef(uid="6f1c2a9e-3b7d", namespace="default", name="resize-42")


def validator(filename: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / filename).read_text(encoding="utf-8")))


def wire(message: TaskMessage | StatusMessage | ControlMessage) -> Any:
    """A message as it crosses the broker: the SDK's own encoding, read back as JSON."""
    return json.loads(encode(message))


# the files are the models' ------------------------------------------------------------------


def test_the_checked_in_schemas_are_what_the_models_generate() -> None:
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == sorted(wire_schemas.MESSAGES)
    assert wire_schemas.stale(SCHEMAS) == [], "regenerate: python -m asynctask_worker.schemas"


def test_a_schema_file_that_drifted_from_its_model_is_reported(tmp_path: Path) -> None:
    assert wire_schemas.main([str(tmp_path)]) == 0
    assert wire_schemas.main([str(tmp_path), "--check"]) == 0
    drifted = json.loads((tmp_path / "status-message.json").read_text())
    drifted["properties"]["progress"]["anyOf"][0]["maximum"] = 1000
    (tmp_path / "status-message.json").write_text(json.dumps(drifted, indent=2) + "\n")
    (tmp_path / "control-message.json").unlink()
    assert wire_schemas.stale(tmp_path) == ["status-message.json", "control-message.json"]
    assert wire_schemas.main([str(tmp_path), "--check"]) == 1


def test_the_documented_command_checks_the_files_from_the_repository_root() -> None:
    check = [sys.executable, "-m", "asynctask_worker.schemas", "--check"]
    done = subprocess.run(check, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("filename", sorted(wire_schemas.MESSAGES))
def test_each_schema_is_draft_2020_12_with_an_id_and_the_protocol_version(filename: str) -> None:
    schema = json.loads((SCHEMAS / filename).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://asynctask.dev/protocol/v{SCHEMA_VERSION}/{filename}"
    assert schema["x-asynctask-protocol-version"] == SCHEMA_VERSION
    assert schema["properties"]["v"]["const"] == SCHEMA_VERSION


# real messages pass ---------------------------------------------------------------------------

app = App("protocol")


@app.task("steps")
def steps(request: dict[str, Any], ctx: TaskContext) -> dict[str, Any]:
    if request.get("fail"):
        raise TaskFailed("the image is empty", reason="EmptyImage")
    if request.get("crash"):
        raise RuntimeError("boom")
    if request.get("huge"):
        return {"blob": "x" * 70_000}
    for step in range(3):
        if ctx.wait_cancelled(request.get("pause", 0.0)):
            return {"stopped": step}
        ctx.progress(100 * (step + 1) / 3, f"step {step + 1} of 3")
    return {"thumbnail": "s3://bucket/cat-640.png", "sizes": [1, 2.5, None, True]}


def statuses_the_worker_sends() -> list[StatusMessage]:
    """Every status message the SDK's dispatcher sends for tasks that succeed, fail, crash,
    return too much, are cancelled running or queued, and run out of time."""
    with StubBroker(app, concurrency=2, cancel_grace_seconds=0.2) as broker:
        tasks = [
            broker.enqueue("steps", {}),
            broker.enqueue("steps", {"fail": True}),
            broker.enqueue("steps", {"crash": True}),
            broker.enqueue("steps", {"huge": True}),
            broker.enqueue("steps", {}, attempt=3),
        ]
        running = broker.enqueue("steps", {"pause": 30})
        broker.wait_started(running)
        broker.cancel(running, "CancelRequested")
        queued = TaskRef(uid="queued-1", namespace="default", name="queued")
        broker.cancel(queued, "CancelRequested")
        broker.enqueue("steps", {}, task=queued)
        late = broker.enqueue("steps", {"pause": 30}, timeout_seconds=1)
        results = [broker.result(t, 15) for t in [*tasks, running, queued, late]]
    assert [r.phase for r in results] == [
        Phase.SUCCEEDED,
        Phase.FAILED,
        Phase.ERROR,
        Phase.ERROR,
        Phase.SUCCEEDED,
        Phase.CANCELLED,
        Phase.CANCELLED,
        Phase.TIMED_OUT,
    ]
    return [status for r in results for status in r.statuses]


def test_every_status_message_the_sdk_sends_passes_the_schema() -> None:
    status = validator("status-message.json")
    sent = statuses_the_worker_sends()
    assert {s.phase for s in sent} == {
        Phase.PROCESSING,
        Phase.SUCCEEDED,
        Phase.FAILED,
        Phase.ERROR,
        Phase.CANCELLED,
        Phase.TIMED_OUT,
    }
    assert any(s.error is not None and s.error.traceback for s in sent)
    for message in sent:
        status.validate(wire(message))


def test_task_and_control_messages_the_sdk_builds_pass_their_schemas() -> None:
    task = validator("task-message.json")
    task.validate(wire(TaskMessage(task=REF, queue="resize")))
    task.validate(
        wire(
            TaskMessage(
                task=REF,
                queue="resize",
                request={"url": "s3://bucket/cat.png", "nested": [[{"a": None}]]},
                attempt=4,
                timeout_seconds=600,
            )
        )
    )
    control = validator("control-message.json")
    for action in ("cancel", "timeout"):
        control.validate(wire(ControlMessage(action=action, task=REF, reason="CancelRequested")))


# invalid messages fail, the schema and the parser alike ---------------------------------------

TASK = {"uid": "6f1c2a9e-3b7d", "namespace": "default", "name": "resize-42"}
STATUS = {"v": 1, "kind": "status", "task": TASK, "attempt": 1, "seq": 0, "phase": "Processing"}
INVALID: list[tuple[str, dict[str, Any]]] = [
    ("status-message.json", {**STATUS, "v": 2}),
    ("status-message.json", {**STATUS, "kind": "task"}),
    ("status-message.json", {**STATUS, "phase": "Done"}),
    ("status-message.json", {**STATUS, "progress": 101}),
    ("status-message.json", {**STATUS, "seq": -1}),
    ("status-message.json", {**STATUS, "message": "x" * 1025}),
    ("status-message.json", {**STATUS, "error": {"reason": "", "message": "empty reason"}}),
    ("status-message.json", {k: v for k, v in STATUS.items() if k != "phase"}),
    ("status-message.json", {**STATUS, "task": {**TASK, "namespace": "Default"}}),
    ("status-message.json", {**STATUS, "task": {**TASK, "uid": "no_underscores"}}),
    ("task-message.json", {"task": TASK}),
    ("task-message.json", {"task": TASK, "queue": "resize", "attempt": 0}),
    ("task-message.json", {"task": TASK, "queue": "resize", "timeout_seconds": 0}),
    ("task-message.json", {"task": {"uid": "u", "name": "x"}, "queue": "resize"}),
    ("control-message.json", {"action": "pause", "task": TASK}),
    ("control-message.json", {"kind": "control", "task": TASK}),
]


@pytest.mark.parametrize(("filename", "body"), INVALID)
def test_an_invalid_message_fails_its_schema_and_the_parser(
    filename: str, body: dict[str, Any]
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validator(filename).validate(body)
    with pytest.raises(MalformedMessage):
        decode(wire_schemas.MESSAGES[filename], json.dumps(body).encode())  # type: ignore[type-var]


# versions: unknown fields are ignored, as docs/protocol.md says -------------------------------


def test_a_status_message_with_unknown_fields_is_accepted_and_they_are_ignored() -> None:
    body = {
        **STATUS,
        "progress": 40,
        "colour": "blue",
        "task": {**TASK, "cluster": "eu-1"},
        "error": None,
    }
    validator("status-message.json").validate(body)
    message = decode(StatusMessage, json.dumps(body).encode())
    assert message.progress == 40 and message.task == TaskRef(**TASK)
    assert "colour" not in message.model_dump() and "cluster" not in message.task.model_dump()
    assert "colour" not in json.loads(encode(message))


def test_a_message_without_v_or_kind_is_read_as_version_1_of_the_expected_kind() -> None:
    body = {"task": TASK, "phase": "Processing", "at": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    validator("status-message.json").validate(body)
    message = decode(StatusMessage, json.dumps(body).encode())
    assert (message.v, message.kind) == (1, "status")
