"""The console commands' shared start (asynctask_worker._entrypoint): ``--version`` prints the
one version, a missing extra is named with the distribution's name, and otherwise the
command's own code runs."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from asynctask_client import _script as client_script
from asynctask_gateway import _script as gateway_script
from asynctask_operator import _script as operator_script
from asynctask_worker import __version__, cli
from asynctask_worker import _entrypoint as entrypoint
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


def _module_level_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.parse(path.read_text()).body:  # module level: not the deferred ones
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_shared_start_and_its_callers_import_only_the_standard_library() -> None:
    """Before the check, nothing of an extra (nor of the SDK's runtime) may be imported."""
    ours = {"asynctask_worker._entrypoint", "asynctask_worker._version"}
    for module in (entrypoint, operator_script, gateway_script, client_script):
        assert module.__file__ is not None
        imported = _module_level_imports(Path(module.__file__)) - ours
        outside = {m for m in imported if m.split(".")[0] not in sys.stdlib_module_names}
        assert not outside, f"{module.__name__} imports {outside} before the check"
