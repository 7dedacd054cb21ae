"""The CLI's arguments: kubectl-style options before or after the command, requests from
text or files, labels; bad ones are usage errors (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from asynctask_client import cli


def test_options_work_before_and_after_the_command_as_kubectl_passes_them() -> None:
    before = cli.parser().parse_args(["-n", "ns", "--context", "c", "get", "t"])
    after = cli.parser().parse_args(["get", "t", "-n", "ns", "--context", "c", "-o", "json"])
    assert (before.namespace, before.context, before.output) == ("ns", "c", None)
    assert (after.namespace, after.context, after.output) == ("ns", "c", "json")
    both = cli.parser().parse_args(["-n", "first", "get", "t"])
    assert both.namespace == "first"  # not undone by the subcommand's default


def test_requests_come_from_json_text_or_a_file(tmp_path: Path) -> None:
    assert cli.read_request('{"x": 1}') == {"x": 1}
    (tmp_path / "r.json").write_text("[1, 2]")
    assert cli.read_request(f"@{tmp_path / 'r.json'}") == [1, 2]
    with pytest.raises(cli.UsageError, match="not JSON"):
        cli.read_request("{x")
    with pytest.raises(cli.UsageError, match="cannot read"):
        cli.read_request(f"@{tmp_path / 'missing.json'}")


def test_labels_need_key_equals_value() -> None:
    assert cli.labels(["a=b", "c="]) == {"a": "b", "c": ""}
    with pytest.raises(cli.UsageError):
        cli.labels(["nokey"])


def test_a_bad_request_exits_2_before_any_connection(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = cli.main(["submit", "q", "--request", "{x", "--gateway", "http://127.0.0.1:9"])
    assert code == 2 and "--request is not JSON" in capsys.readouterr().err
    missing = cli.main(["get", "t", "--kubeconfig", str(tmp_path / "none")])
    assert missing == 4 and "no kubeconfig found" in capsys.readouterr().err


def test_get_and_result_take_archived_and_describe_does_not() -> None:
    for command in ("get", "result"):
        args = cli.parser().parse_args([command, "t", "--archived"])
        assert args.archived and args.name == "t"
        assert not cli.parser().parse_args([command, "t"]).archived
    with pytest.raises(SystemExit):
        cli.parser().parse_args(["describe", "t", "--archived"])


def test_archived_straight_to_the_apiserver_says_the_gateway_reads_the_history(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u, namespace: ns}}]\n"
        "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "users: [{name: u, user: {token: t}}]\n"
    )
    monkeypatch.delenv("ASYNCTASK_GATEWAY", raising=False)
    code = cli.main(["--kubeconfig", str(config), "get", "t", "--archived"])
    assert code == 3  # refused before any connection (port 9 would be unreachable: 4)
    assert "read through the gateway" in capsys.readouterr().err
