"""The command line reaches the operator: its namespaces are handed on through kopf's memo."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import kopf
import pytest

from asynctask_operator import cli
from asynctask_operator.app import OperatorMemo
from asynctask_worker import __version__


@pytest.fixture(autouse=True)
def own_gc() -> Iterator[None]:
    """main() tunes the garbage collector of its process: give the test process its own back."""
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_the_operator_collects_cycles_less_often(monkeypatch: pytest.MonkeyPatch) -> None:
    async def operator(**kwargs: Any) -> None:
        assert gc.get_threshold()[0] == cli.GC_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0  # what was imported is never looked at again

    monkeypatch.setattr(kopf, "operator", operator)
    assert cli.main(["--standalone"]) == 0


def test_the_namespaces_of_the_command_line_reach_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:  # kopf.operator, which would run forever
        seen.update(kwargs)

    monkeypatch.setattr(kopf, "operator", operator)
    assert cli.main(["--standalone", "--namespace", "t-*", "-n", "prod"]) == 0
    memo = seen["memo"]
    assert isinstance(memo, OperatorMemo) and memo.namespaces == ["t-*", "prod"]
    # kopf watches nothing: the namespaces are the operator's own watch (task_watch)
    assert "namespaces" not in seen and seen["clusterwide"] is True
    assert memo.operator is None  # built by the startup handler, once kopf runs


def test_without_namespaces_the_operator_is_cluster_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(kopf, "operator", operator)
    cli.main(["--standalone"])
    assert seen["memo"].namespaces == [] and seen["clusterwide"] is True


def test_a_memo_without_an_operator_says_so() -> None:
    with pytest.raises(RuntimeError, match="has not started"):
        OperatorMemo().running()


def test_kopf_always_runs_standalone_and_peering_names_the_lease(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kopf's peering pauses only kopf's watches: the operator's Lease elects instead."""
    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:
        seen.update(kwargs)

    monkeypatch.setattr(kopf, "operator", operator)
    for argv, lease in (
        (["--peering", "shard-a"], "shard-a"),
        (["--standalone"], None),
        ([], None),
    ):
        seen.clear()
        assert cli.main(argv) == 0
        assert seen["standalone"] is True and "peering_name" not in seen
        assert seen["memo"].peering == lease


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--peering", "Shard_A"], "not a Kubernetes object name"),
        (["--peering", "a", "--standalone"], "not allowed with argument"),
    ],
)
def test_a_bad_peering_is_refused_before_anything_runs(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    async def operator(**kwargs: Any) -> None:
        raise AssertionError("kopf must not run")

    monkeypatch.setattr(kopf, "operator", operator)
    with pytest.raises(SystemExit) as exit_:
        cli.main(argv)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_the_operator_logs_its_version_at_start(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def operator(**kwargs: Any) -> None:
        pass

    monkeypatch.setattr(kopf, "operator", operator)
    monkeypatch.setattr(cli, "configure_logging", lambda *args: None)
    with caplog.at_level("INFO", logger="asynctask.operator"):
        assert cli.main(["--standalone"]) == 0
    assert f"asynctask-operator {__version__} starting" in caplog.messages


def test_version_is_printed_without_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"asynctask-operator {__version__}\n"
