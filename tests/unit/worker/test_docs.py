"""The worker docs match the SDK: the README's "Writing a worker" section is
examples/greetings.py and works as written; docs/writing-a-worker.md's commands, settings,
context members, metrics and testing API exist as documented.

The README's worker runs here in memory, through the SDK's stub broker;
tests/e2e/test_worker.py runs it (and the guide's thumbnails worker) with the documented
commands against RabbitMQ and a real control plane.
"""

from __future__ import annotations

import inspect
import re
import shlex
import time
from pathlib import Path

import pytest
import yaml

import greetings
from asynctask_worker import Phase, TaskContext, WorkerSettings
from asynctask_worker.cli import load_app, parse_settings
from asynctask_worker.metrics import WorkerMetrics
from asynctask_worker.testing import StubBroker, TaskResult, run_task

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
GUIDE = REPO / "docs" / "writing-a-worker.md"
SECTION = "## Writing a worker"


def readme_section() -> str:
    text = (REPO / "README.md").read_text()
    assert text.count(f"\n{SECTION}\n") == 1, f"README.md needs one {SECTION!r} section"
    section = text.split(f"\n{SECTION}\n", 1)[1]
    return section.split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    """The fenced code blocks of one language in ``text``."""
    return re.findall(rf"^```{language}\n(.*?)^```$", text, re.M | re.S)


def readme_blocks(language: str) -> list[str]:
    """The fenced code blocks of one language in the README's worker section."""
    return blocks(readme_section(), language)


def guide_commands() -> list[list[str]]:
    """The guide's ``$ asynctask-worker ...`` command lines, split as a shell would."""
    return [
        shlex.split(line[2:])
        for block in blocks(GUIDE.read_text(), "console")
        for line in block.splitlines()
        if line.startswith("$ asynctask-worker ")
    ]


# the README -------------------------------------------------------------------------------


def test_the_readme_shows_the_example_verbatim() -> None:
    assert readme_blocks("python") == [(EXAMPLES / "greetings.py").read_text()], (
        "README.md is out of date: paste examples/greetings.py into its worker section"
    )


def test_the_readme_manifest_is_the_example_manifest_and_fits_the_worker() -> None:
    (manifest,) = readme_blocks("yaml")
    assert manifest == (EXAMPLES / "greet.yaml").read_text()
    task = yaml.safe_load(manifest)
    assert task["kind"] == "AsyncTask"
    assert task["spec"]["queue"] in greetings.app.queues
    greetings.GreetRequest.model_validate(task["spec"]["request"])


def test_the_readme_command_serves_the_example() -> None:
    (sh,) = readme_blocks("sh")
    (command,) = [line for line in sh.splitlines() if line.startswith("asynctask-worker ")]
    spec, settings = parse_settings(command.split()[1:])
    assert load_app(spec) is greetings.app
    assert settings.concurrency == 4


def test_the_readme_links_the_worker_guide() -> None:
    assert "(docs/writing-a-worker.md)" in readme_section()
    assert (REPO / "docs" / "writing-a-worker.md").exists()


def test_the_example_succeeds_with_progress() -> None:
    result = run_task(greetings.app, "greet", {"name": "Ada", "steps": 3, "step_seconds": 0})
    assert result.phase is Phase.SUCCEEDED
    assert result.result == {"greeting": "Hello, Ada!"}
    assert result.progress == [(33, "step 1 of 3"), (66, "step 2 of 3"), (100, "step 3 of 3")]


def test_the_example_fails_the_business_way() -> None:
    result = run_task(greetings.app, "greet", {"name": "nobody"})
    assert result.phase is Phase.FAILED and result.ran
    assert result.error is not None
    assert (result.error.reason, result.error.message) == (
        "UnknownName",
        "nobody cannot be greeted",
    )
    assert result.progress == []


@pytest.mark.parametrize("request_", [{}, {"name": "Ada", "steps": 0}, "Ada"])
def test_the_example_refuses_an_invalid_request(request_: object) -> None:
    result = run_task(greetings.app, "greet", request_)
    assert result.phase is Phase.FAILED and result.progress == []
    assert result.error is not None and result.error.reason == "InvalidRequest"


def test_the_example_stops_between_steps_when_cancelled() -> None:
    # A grace period far beyond the test's wait: only the handler's own check can end it.
    with StubBroker(greetings.app, cancel_grace_seconds=60) as broker:
        task = broker.enqueue("greet", {"name": "Ada", "steps": 100, "step_seconds": 0.1})
        broker.wait_started(task)
        broker.cancel(task)
        result = broker.result(task, timeout=5)
        assert result.phase is Phase.CANCELLED
        assert result.error is not None and result.error.reason == "Cancelled"
        assert 0 <= len(result.progress) < 100
        assert broker.acked == [task]


def test_the_example_stops_when_it_runs_out_of_time() -> None:
    started = time.monotonic()
    result = run_task(
        greetings.app,
        "greet",
        {"name": "Ada", "steps": 100, "step_seconds": 0.1},
        timeout_seconds=1,
        cancel_grace_seconds=60,
    )
    assert result.phase is Phase.TIMED_OUT
    assert 0 < len(result.progress) < 100
    assert time.monotonic() - started < 5  # it stopped at its next check, not after 10 s


# the guide, docs/writing-a-worker.md -------------------------------------------------------


def test_the_guide_commands_parse_and_load_the_example() -> None:
    commands = guide_commands()
    assert len(commands) == 2
    for argv in commands:
        spec, settings = parse_settings(argv[1:])
        assert load_app(spec).queues == ["thumbnails"]
    assert (settings.pool, settings.log_format, settings.metrics_port) == ("thread", "json", 9100)


def _table(header: str) -> list[list[str]]:
    """The rows (cells) of the guide's table whose header line starts with ``header``."""
    lines = GUIDE.read_text().splitlines()
    (start,) = [i for i, line in enumerate(lines) if line.startswith(header)]
    rows = []
    for line in lines[start + 2 :]:  # after the header and its |---| line
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_the_guide_lists_every_setting_with_its_default() -> None:
    rows = _table("| variable (`ASYNCTASK_WORKER_...`)")
    documented: dict[str, str] = {}
    for cells in rows:
        names = re.findall(r"`([A-Z_]+)`", cells[0])
        defaults = [d.strip(" `") for d in cells[1].split(",")]
        for i, name in enumerate(names):
            documented[name] = defaults[i] if len(defaults) == len(names) else cells[1]
    fields = WorkerSettings.model_fields
    assert set(documented) == {name.upper() for name in fields}
    for name, default in documented.items():
        value = fields[name.lower()].default
        if isinstance(value, int | float) and not isinstance(value, bool):
            assert float(default) == value, f"{name}: the guide says {default}, it is {value}"
        elif isinstance(value, str) and name != "WORKER_ID":
            assert default == value, f"{name}: the guide says {default}, it is {value}"


def test_the_guide_names_only_context_members_that_exist() -> None:
    rows = _table("| member | what it is |")
    members = {m for cells in rows for m in re.findall(r"`ctx\.(\w+)", cells[0])}
    assert members >= {"progress", "cancelled", "raise_if_cancelled", "wait_cancelled"}
    for member in members:
        assert (
            hasattr(TaskContext, member)
            or member in inspect.signature(TaskContext.__init__).parameters
        ), f"TaskContext has no {member}"


def test_the_guide_lists_every_metric() -> None:
    rows = _table("| metric | labels |")
    documented = {
        re.findall(r"`(\w+)`", cells[0])[0]: sorted(re.findall(r"`(\w+)`", cells[1]))
        for cells in rows
    }
    actual = {}
    for collector in WorkerMetrics().registry.collect():
        name = collector.name + ("_total" if collector.type == "counter" else "")
        actual[name] = collector
    assert set(documented) == set(actual)
    metrics = WorkerMetrics()
    labelled = {
        "asynctask_worker_tasks_started_total": metrics.started,
        "asynctask_worker_tasks_finished_total": metrics.finished,
        "asynctask_worker_tasks_revoked_before_start_total": metrics.revoked,
        "asynctask_worker_task_duration_seconds": metrics.duration,
        "asynctask_worker_messages_dead_lettered_total": metrics.dead_lettered,
        "asynctask_worker_tasks_in_flight": metrics.in_flight,
        "asynctask_worker_payload_bytes_total": metrics.payload_bytes,
        "asynctask_worker_payload_retries_total": metrics.payload_retries,
    }
    for name, labels in documented.items():
        metric = labelled.get(name)
        assert labels == sorted(metric._labelnames if metric is not None else ()), name


def _documented_signature(call: str) -> list[str]:
    text = " ".join(GUIDE.read_text().split())  # the guide wraps long lines
    (args,) = re.findall(rf"`{re.escape(call)}\(([^)]*)\)`", text)
    return [a.split("=")[0].strip() for a in args.split(",")]


@pytest.mark.parametrize(
    ("call", "func"),
    [("run_task", run_task), ("StubBroker", StubBroker), ("enqueue", StubBroker.enqueue)],
)
def test_the_guide_shows_the_testing_signatures(call: str, func: object) -> None:
    assert callable(func)
    expected: list[str] = []
    for name, param in inspect.signature(func).parameters.items():
        if param.kind is param.KEYWORD_ONLY and "*" not in expected:
            expected.append("*")
        if name != "self":
            expected.append(name)
    assert _documented_signature(call) == expected


def test_the_guide_names_the_task_result_fields() -> None:
    text = " ".join(GUIDE.read_text().split())
    (described,) = re.findall(r"returns a `TaskResult`: (.*?)\. `cancel_after`", text)
    fields = set(re.findall(r"`(\w+)`", described))
    public = {n for n in TaskResult.__dataclass_fields__ if n != "task"} | {"ran"}
    assert fields == public
