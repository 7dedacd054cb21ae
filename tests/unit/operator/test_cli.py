"""The command line reaches the operator: its namespaces are handed on through kopf's memo."""

from __future__ import annotations

from typing import Any

import kopf
import pytest

from asynctask_operator import cli
from asynctask_operator.app import OperatorMemo


def test_the_namespaces_of_the_command_line_reach_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    async def operator(**kwargs: Any) -> None:  # kopf.operator, which would run forever
        seen.update(kwargs)

    monkeypatch.setattr(kopf, "operator", operator)
    assert cli.main(["--standalone", "--namespace", "t-*", "-n", "prod"]) == 0
    memo = seen["memo"]
    assert isinstance(memo, OperatorMemo) and memo.namespaces == ["t-*", "prod"]
    assert seen["namespaces"] == ["t-*", "prod"] and seen["clusterwide"] is False
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
