"""The worker SDK installs alone: the base distribution pulls in nothing of the operator.

The wheel is built as the Dockerfile builds it and installed without extras into a clean
virtualenv, its dependencies resolved from the package index (pip's cache makes later runs
quick). There a worker app can be written and tested, and the operator's dependencies are
absent: ``import kopf`` fails, and the ``asynctask-operator`` command says which extra it
needs instead of a traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from asynctask_worker import __version__
from tests.unit.test_dockerfile import build_context

pytestmark = pytest.mark.integration

SDK_DEPENDENCIES = {"pika", "pydantic", "pydantic-settings", "prometheus-client"}
OPERATOR_ONLY = {"kopf", "kubernetes", "aiohttp"}

APP = textwrap.dedent("""
    import io

    from asynctask_worker import App, Blob, Phase, TaskContext
    from asynctask_worker.testing import run_task

    app = App()

    @app.task("double")
    def double(request: dict, ctx: TaskContext) -> dict:
        ctx.progress(50, "halfway")
        return {"n": request["n"] * 2}

    result = run_task(app, "double", {"n": 21})
    assert result.phase is Phase.SUCCEEDED, result
    print("result", result.result)

    @app.task("blob")
    def blob(request: dict) -> Blob:
        return Blob(io.BytesIO(b"bytes"), content_type="text/plain")

    # large payloads need no storage client in the SDK: without a grant, a clear Error
    print("blob:", run_task(app, "blob", {}).error.reason)
    for module in ("kopf", "boto3"):
        try:
            __import__(module)
        except ModuleNotFoundError as exc:
            print("no module:", exc.name)
""")


@pytest.fixture(scope="module")
def sdk_wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as the Dockerfile builds it."""
    context, wheels = tmp_path_factory.mktemp("context"), tmp_path_factory.mktemp("wheels")
    build_context(context)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    built = subprocess.run(
        [*pip, "wheel", "--no-deps", "-q", "--wheel-dir", str(wheels), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = wheels.glob("asynctask_k8s-*.whl")
    return wheel


@pytest.fixture(scope="module")
def sdk_venv(sdk_wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtualenv with the wheel installed without extras (dependencies from the index)."""
    wheel = sdk_wheel
    venv = tmp_path_factory.mktemp("sdk") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "-q",
            "--prefer-binary",
            "--disable-pip-version-check",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return venv


def run(venv: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        [str(venv / "bin" / args[0]), *args[1:]],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_the_sdk_alone_runs_a_worker_app_without_the_operators_dependencies(
    sdk_venv: Path, tmp_path: Path
) -> None:
    installed = run(sdk_venv, "pip", "list", "--format=freeze", cwd=tmp_path)
    names = {line.split("==")[0].lower().replace("_", "-") for line in installed.stdout.split()}
    assert SDK_DEPENDENCIES | {"asynctask-k8s"} <= names, names
    assert not names & OPERATOR_ONLY, names & OPERATOR_ONLY
    (tmp_path / "app.py").write_text(APP)
    proc = run(sdk_venv, "python", "app.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "result {'n': 42}",
        "blob: PayloadStorageOff",
        "no module: kopf",
        "no module: boto3",
    ], proc.stdout
    where = run(
        sdk_venv,
        "python",
        "-c",
        "import asynctask_worker; print(asynctask_worker.__file__)",
        cwd=tmp_path,
    )
    assert where.stdout.startswith(str(sdk_venv)), where.stdout  # the wheel's, not this tree's


def test_every_command_prints_the_version_without_its_extra(sdk_venv: Path, tmp_path: Path) -> None:
    """``--version`` needs nothing but the SDK: it answers before the check for the extra."""
    for command in ("asynctask", "asynctask-operator", "asynctask-gateway", "asynctask-worker"):
        proc = run(sdk_venv, command, "--version", cwd=tmp_path)
        assert proc.returncode == 0, (command, proc.stderr)
        assert proc.stdout == f"{command} {__version__}\n", proc.stdout


def test_the_operator_command_names_the_extra_it_needs(sdk_venv: Path, tmp_path: Path) -> None:
    proc = run(sdk_venv, "asynctask-operator", "--help", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "asynctask-k8s[operator]" in proc.stderr, proc.stderr
    assert "kopf" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_gateway_command_names_the_extra_it_needs(sdk_venv: Path, tmp_path: Path) -> None:
    proc = run(sdk_venv, "asynctask-gateway", "--help", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "asynctask-k8s[gateway]" in proc.stderr, proc.stderr
    assert "aiohttp" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_client_command_names_the_extra_it_needs(sdk_venv: Path, tmp_path: Path) -> None:
    proc = run(sdk_venv, "asynctask", "--help", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "asynctask-k8s[client]" in proc.stderr, proc.stderr
    assert "httpx" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_the_client_extra_brings_neither_kopf_nor_kubernetes(
    sdk_venv: Path, sdk_wheel: Path, tmp_path: Path
) -> None:
    """``asynctask-k8s[client]``: httpx and PyYAML on top of the SDK, and the CLI runs (last in
    this module: it adds to the SDK's virtualenv)."""
    added = run(
        sdk_venv,
        "pip",
        "install",
        "-q",
        "--prefer-binary",
        "--disable-pip-version-check",
        f"{sdk_wheel}[client]",
        cwd=tmp_path,
    )
    assert added.returncode == 0, added.stderr[-3000:]
    installed = run(sdk_venv, "pip", "list", "--format=freeze", cwd=tmp_path)
    names = {line.split("==")[0].lower().replace("_", "-") for line in installed.stdout.split()}
    assert {"httpx", "pyyaml"} <= names and not names & OPERATOR_ONLY, names
    proc = run(sdk_venv, "kubectl-asynctask", "--help", cwd=tmp_path)
    assert proc.returncode == 0 and "submit" in proc.stdout, proc.stderr
