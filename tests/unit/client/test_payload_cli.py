"""The CLI's large payloads: ``submit --request-file`` (with ``--content-type``) and
``result -o FILE`` (``-o json``/``yaml`` still formats); misuse is a usage error (exit 2)
before any connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from asynctask_client import cli, payload_cli


def test_result_takes_a_file_or_a_format_after_the_command() -> None:
    args = cli.parser().parse_args(["result", "t", "-o", "out.bin"])
    assert payload_cli.result_target(args) == "out.bin" and args.output is None
    for fmt in ("json", "yaml"):
        args = cli.parser().parse_args(["result", "t", "-o", fmt])
        assert payload_cli.result_target(args) is None and args.output == fmt
    with pytest.raises(SystemExit):  # other commands keep -o to formats
        cli.parser().parse_args(["get", "t", "-o", "out.bin"])


def test_a_request_file_is_submitted_as_a_path(tmp_path: Path) -> None:
    data = tmp_path / "in.bin"
    data.write_bytes(b"\x00\x01")
    args = cli.parser().parse_args(
        ["submit", "q", "--request-file", str(data), "--content-type", "image/png"]
    )
    assert payload_cli.request_of(args, {}, []) == data and args.content_type == "image/png"
    inline = cli.parser().parse_args(["submit", "q", "--request", '{"a": 1}'])
    assert payload_cli.request_of(inline, {"a": 1}, []) == {"a": 1}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--request-file", "/nonexistent/in.bin"], "no such file"),
        (["--request-file", "x", "--request", "[1]"], "not both"),
        (["--content-type", "text/plain"], "goes with --request-file"),
    ],
)
def test_misused_payload_options_exit_2_before_any_connection(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.main(["submit", "q", *argv, "--gateway", "http://127.0.0.1:9"])
    assert code == 2 and message in capsys.readouterr().err
