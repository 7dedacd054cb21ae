"""What the CLI prints and the exit codes, from views alone."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from asynctask_client.render import (
    EXIT_CODES,
    NOT_DONE,
    Rate,
    age,
    bar_line,
    clock,
    describe,
    exit_code,
    machine,
    plain_line,
    table,
)
from asynctask_client.transport import Details
from asynctask_worker.messages import Phase
from asynctask_worker.views import TaskView

NOW = datetime(2026, 11, 24, 12, 0, 0, tzinfo=UTC)


def view(**fields: Any) -> TaskView:
    base: dict[str, Any] = {"name": "t1", "namespace": "ns", "createdAt": "2026-11-24T11:59:18Z"}
    base.update(fields)
    if "phase" in base:
        base["done"] = Phase(base["phase"]).terminal
    return TaskView.model_validate(base)


def test_every_terminal_phase_has_its_own_exit_code_and_success_is_zero() -> None:
    assert EXIT_CODES[Phase.SUCCEEDED] == 0
    codes = [EXIT_CODES[p] for p in Phase if p.terminal]
    assert len(set(codes)) == len(codes) == 5
    assert exit_code(view(phase="Processing")) == NOT_DONE
    assert exit_code(view(phase="TimedOut")) == 13


def test_age_reads_like_kubectl() -> None:
    assert age("2026-11-24T11:59:18Z", NOW) == "42s"
    assert age("2026-11-24T11:00:00Z", NOW) == "1h"
    assert age("2026-11-21T12:00:00Z", NOW) == "3d"
    assert age(None, NOW) == "<unknown>"


def test_the_table_has_a_progress_column_and_aligned_cells() -> None:
    rows = table(
        [
            view(name="short", phase="Processing", progress=40, message="step 2"),
            view(name="a-much-longer-name", phase="Succeeded", progress=100),
        ],
        NOW,
    ).splitlines()
    assert rows[0].split() == ["NAME", "PHASE", "PROGRESS", "AGE", "MESSAGE"]
    assert rows[1].split() == ["short", "Processing", "40%", "42s", "step", "2"]
    assert rows[0].index("PHASE") == rows[1].index("Processing") == rows[2].index("Succeeded")


def test_the_estimate_comes_from_the_progress_rate_while_processing() -> None:
    rate = Rate()
    rate.add(0.0, view(phase="Pending"))
    rate.add(1.0, view(phase="Processing", progress=10))
    assert rate.eta(1.0) is None  # one sample is no rate
    rate.add(3.0, view(phase="Processing", progress=30))
    assert rate.eta(3.0) == pytest.approx(7.0)  # 10 %/s, 70 % left
    assert rate.eta(5.0) == pytest.approx(5.0)  # time passes between reports
    assert rate.eta(100.0) == 0.0


def test_the_bar_line_shows_percent_phase_message_elapsed_and_eta_within_the_width() -> None:
    line = bar_line(
        view(phase="Processing", progress=50, message="step 2 of 4"), elapsed=65, eta=12, width=100
    )
    assert "[============>            ]" in line
    assert " 50% Processing  step 2 of 4  1:05 ETA 0:12" in line
    assert len(line) <= 100 and "\x1b" not in line
    done = bar_line(view(phase="Succeeded", progress=100, message="Succeeded"), 3725, 1, 100)
    assert done.endswith("100% Succeeded  1:02:05") and "ETA" not in done
    narrow = bar_line(view(phase="Processing", progress=5, message="x" * 200), 1, None, 60)
    assert len(narrow) <= 60


def test_plain_lines_and_machine_output() -> None:
    assert plain_line(view(phase="Processing", progress=20, message="m")) == "t1 Processing 20% m"
    assert machine({"a": [1]}, "json") == '{\n  "a": [\n    1\n  ]\n}'
    assert machine({"a": [1]}, "yaml") == "a:\n- 1"
    assert clock(59) == "0:59" and clock(3600) == "1:00:00"


def test_describe_shows_conditions_webhook_and_events_or_says_why_not() -> None:
    failed = view(
        phase="Error",
        error={
            "reason": "HandlerError",
            "message": "boom",
            "traceback": "Traceback...\nRuntimeError: boom",
        },
    )
    status = {
        "conditions": [{"type": "Completed", "status": "True", "reason": "Error"}],
        "webhook": {"phase": "Error", "delivered": True},
    }
    events = [
        {
            "type": "Warning",
            "reason": "Error",
            "message": "boom",
            "lastTimestamp": "2026-11-24T11:59:00Z",
        }
    ]
    text = describe(Details(failed, {"queue": "q"}, status, events), NOW)
    assert "Queue:        q" in text and "  RuntimeError: boom" in text
    assert "  Completed     True    Error" in text
    assert '"delivered": true' in text
    assert "  Warning   Error          1m    boom" in text
    assert "not allowed" in describe(Details(failed, {}, status, None), NOW)
    assert "Kubernetes API only" in describe(Details(failed), NOW)
