"""Bulk actions' pure parts in the client and the SDK's shared answer: counts, what is
skipped, a selector that selects everything refused before any call, and the CLI's lines."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from asynctask_client import bulk, cli
from asynctask_worker.bulk import (
    BulkAnswer,
    acted,
    cancel_skipped,
    failed,
    gone,
    require_selector,
)
from asynctask_worker.views import TaskView


def view(name: str, phase: str = "Pending") -> TaskView:
    done = phase not in ("Pending", "Processing")
    return TaskView.model_validate({"name": name, "namespace": "ns", "phase": phase, "done": done})


def test_the_answer_counts_each_outcome_and_names_each_task() -> None:
    items = [
        acted("a", "cancel"),
        cancel_skipped(view("b", "Succeeded"), False),
        cancel_skipped(view("c"), True),
        failed("d", "Forbidden", "no"),
        gone("e"),
    ]
    answer = BulkAnswer.of("cancel", [i for i in items if i is not None], "tok")
    assert (answer.matched, answer.changed, answer.skipped, answer.failed) == (5, 1, 3, 1)
    assert [i.reason for i in answer.items] == [
        None,
        "AlreadyFinished",
        "CancelRequested",
        "Forbidden",
        "NotFound",
    ]
    wire = answer.to_json()
    assert wire["continue"] == "tok" and BulkAnswer.model_validate(wire) == answer


def test_a_running_task_not_yet_cancelled_is_cancelled() -> None:
    assert cancel_skipped(view("a", "Processing"), False) is None


def test_pages_add_up_and_the_last_page_ends_it() -> None:
    first = BulkAnswer.of("delete", [acted("a", "delete")], "more")
    second = BulkAnswer.of("delete", [gone("b")])
    both = first.then(second)
    assert (both.matched, both.changed, both.skipped, both.continue_) == (2, 1, 1, None)


@pytest.mark.parametrize("selector", ["", "  ", ",", " ,\t,"])
def test_a_selector_that_selects_everything_is_refused(selector: str) -> None:
    with pytest.raises(ValueError, match="at least one term"):
        require_selector(selector)
    assert require_selector("team=x") == "team=x"


def test_a_dry_run_plans_what_a_cancel_would_skip() -> None:
    planned = bulk.plan("cancel", [view("a"), view("b", "Failed")])
    assert (planned.changed, planned.skipped) == (1, 1)
    lines = bulk.lines(planned, dry_run=True)
    assert lines[0] == "asynctask/a would be cancelled"
    assert lines[1].startswith("asynctask/b would be skipped: AlreadyFinished")
    assert lines[-1] == (
        "2 matched: 1 would be cancelled, 1 would be skipped, 0 failed (dry run: nothing done)"
    )
    assert bulk.plan("delete", [view("b", "Failed")]).changed == 1


def test_the_lines_say_why_a_task_failed() -> None:
    answer = BulkAnswer.of("delete", [failed("x", "Forbidden", "cannot delete")])
    assert bulk.lines(answer) == [
        "asynctask/x failed: Forbidden: cannot delete",
        "1 matched: 0 deleted, 0 skipped, 1 failed",
    ]


@pytest.mark.parametrize(
    "argv",
    [
        ["cancel"],
        ["cancel", "t", "-l", "a=b"],
        ["delete", "t", "--dry-run"],
        ["delete", "t", "--yes"],
        ["cancel", "-l", " , "],
    ],
)
def test_cancel_and_delete_take_a_name_or_a_selector(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Usage errors exit 2 before any call (the gateway here is a port nothing listens on)."""
    code = cli.main([*argv, "--gateway", "http://127.0.0.1:9", "--token", "t"])
    assert code == 2, capsys.readouterr()
    assert "error:" in capsys.readouterr().err


def test_the_selector_and_its_flags_parse() -> None:
    args = cli.parser().parse_args(["delete", "-l", "team=x", "--dry-run", "-y"])
    assert (args.name, args.selector, args.dry_run, args.yes) == (None, "team=x", True, True)


@pytest.mark.parametrize(("typed", "goes_on"), [("y\n", True), ("YES\n", True), ("\n", False)])
def test_the_confirmation_goes_on_only_on_yes(
    typed: str, goes_on: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bulk.confirmed("delete", 3, "team=x", "ns", io.StringIO(typed)) is goes_on
    assert (
        'delete 3 task(s) matching "team=x" in the namespace ns? [y/N]' in capsys.readouterr().err
    )
