"""Settings, the CLI, structured logs and metrics: what an operator of workers configures."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from asynctask_worker import App, Phase, TaskContext, TaskFailed, Worker, WorkerSettings
from asynctask_worker._runtime.logs import make_handler
from asynctask_worker.cli import load_app, parse_settings
from asynctask_worker.testing import StubBroker

app = App("unit-config")


@app.task("chatty")
def chatty(request: dict[str, Any], ctx: TaskContext) -> None:
    logging.getLogger("some.library").warning("a library speaks")
    ctx.logger.info("the handler speaks")
    raise TaskFailed("no")


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, logging.Handler]]:
    out = io.StringIO()
    handler = make_handler("json", out)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out, handler
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "CONCURRENCY": "3",
        "QUEUES": "a, b,",
        "POOL": "process",
        "CANCEL_GRACE_SECONDS": "2.5",
        "METRICS_PORT": "9100",
        "LOG_FORMAT": "json",
    }.items():
        monkeypatch.setenv(f"ASYNCTASK_WORKER_{key}", value)
    s = WorkerSettings()
    assert (
        s.concurrency,
        s.queues,
        s.pool,
        s.cancel_grace_seconds,
        s.metrics_port,
        s.log_format,
    ) == (3, ["a", "b"], "process", 2.5, 9100, "json")
    assert s.effective_prefetch == 3  # prefetch follows the concurrency
    monkeypatch.setenv("ASYNCTASK_WORKER_POOL", "fork")
    with pytest.raises(ValueError, match="pool"):
        WorkerSettings()


def test_cli_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASYNCTASK_WORKER_CONCURRENCY", "3")
    monkeypatch.setenv("ASYNCTASK_WORKER_GRACE_PERIOD_SECONDS", "7")
    spec, s = parse_settings(
        [
            "mod:app",
            "--concurrency",
            "5",
            "--pool",
            "process",
            "--cancel-grace",
            "1.5",
            "--metrics-port",
            "0",
        ]
    )
    assert spec == "mod:app"
    assert (
        s.concurrency,
        s.pool,
        s.cancel_grace_seconds,
        s.grace_period_seconds,
        s.metrics_port,
    ) == (5, "process", 1.5, 7.0, 0)


def test_load_app_finds_the_app_or_says_what_is_wrong() -> None:
    assert load_app("tests.unit.worker.test_config:app") is app
    assert load_app("example_tasks").name == "examples"  # attribute defaults to `app`
    with pytest.raises(SystemExit, match=r"not an asynctask_worker\.App"):
        load_app("tests.unit.worker.test_config:chatty")


def test_the_worker_refuses_what_it_cannot_serve() -> None:
    with pytest.raises(ValueError, match="no handler for queue"):
        Worker(app, WorkerSettings(queues=["nope"]))
    local = App()

    @local.task("local")
    def handler(request: Any) -> None: ...

    with pytest.raises(ValueError, match="define it at module level"):
        Worker(local, WorkerSettings(pool="process"))
    Worker(app, WorkerSettings(pool="process"))  # module-level handlers are fine


def test_json_logs_carry_the_task_ids_on_every_record(
    captured: tuple[io.StringIO, logging.Handler],
) -> None:
    out, _ = captured
    with StubBroker(app) as broker:
        task = broker.enqueue("chatty", {}, namespace="team", name="job-1")
        assert broker.result(task).phase is Phase.FAILED
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    about_task = [
        r
        for r in records
        if r["message"] in ("a library speaks", "the handler speaks")
        or r["logger"] == "asynctask.worker"
    ]
    assert {r["message"] for r in about_task} >= {"a library speaks", "the handler speaks"}
    assert len(about_task) >= 4  # + the runtime's "started" and outcome lines
    for r in about_task:
        assert (r["task_uid"], r["task_namespace"], r["task_name"], r["attempt"], r["queue"]) == (
            task.uid,
            "team",
            "job-1",
            1,
            "chatty",
        ), r


def test_text_logs_append_the_task_ids() -> None:
    out = io.StringIO()
    handler = make_handler("text", out)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    for key, value in {
        "task_uid": "u1",
        "task_namespace": "ns",
        "task_name": "n",
        "attempt": 2,
    }.items():
        setattr(record, key, value)
    handler.handle(record)
    assert out.getvalue().rstrip().endswith("hello [task=ns/n uid=u1 attempt=2]")


def test_metrics_count_starts_outcomes_and_durations() -> None:
    with StubBroker(app) as broker:
        broker.enqueue("chatty", {})
        broker.join()
    m = broker.metrics
    assert m.value("asynctask_worker_tasks_started_total", queue="chatty") == 1
    assert m.value("asynctask_worker_tasks_finished_total", queue="chatty", outcome="Failed") == 1
    assert (
        m.value("asynctask_worker_task_duration_seconds_count", queue="chatty", outcome="Failed")
        == 1
    )
    assert m.value("asynctask_worker_tasks_in_flight", queue="chatty") == 0
