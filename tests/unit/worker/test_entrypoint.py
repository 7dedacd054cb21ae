"""The console commands' shared start (asynctask_worker._entrypoint): ``--version`` prints the
one version, a missing extra is named with the distribution's name, and otherwise the
command's own code runs."""

from __future__ import annotations

import pytest

from asynctask_client import _script as client_script
from asynctask_gateway import _script as gateway_script
from asynctask_operator import _script as operator_script
from asynctask_worker import __version__, cli
from asynctask_worker._entrypoint import missing_modules, run_command


@pytest.mark.parametrize(
    ("main", "prog"),
    [
        (operator_script.main, "asynctask-operator"),
        (gateway_script.main, "asynctask-gateway"),
        (client_script.main, "asynctask"),
    ],
)
def test_each_command_prints_the_one_version(
    main: object, prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(main)
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"{prog} {__version__}\n"


def test_the_worker_command_prints_the_one_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"asynctask-worker {__version__}\n"


def test_a_missing_extra_is_named_and_nothing_runs(capsys: pytest.CaptureFixture[str]) -> None:
    ran: list[list[str] | None] = []

    def run(argv: list[str] | None) -> int:
        ran.append(argv)
        return 0

    code = run_command("asynctask-x", "x", ("json", "no_such_module_here"), run, ["--help"])
    assert code == 2 and ran == []
    err = capsys.readouterr().err
    assert "asynctask-x needs no_such_module_here" in err
    assert "pip install 'asynctask-k8s[x]'" in err


def test_with_the_extra_the_command_runs_with_its_arguments() -> None:
    ran: list[list[str] | None] = []

    def run(argv: list[str] | None) -> int | None:
        ran.append(argv)
        return None

    assert run_command("asynctask-x", "x", ("json",), run, ["--help"]) == 0
    assert ran == [["--help"]]
    assert missing_modules(("json", "no_such_module_here")) == ["no_such_module_here"]
