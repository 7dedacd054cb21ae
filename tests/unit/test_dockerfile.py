"""The Dockerfile (no Docker engine here): its structure, and the wheel it builds.

The structure is read from the file: a build stage and a slim runtime stage, base images
pinned by version tag, a numeric non-root USER, no build tools in the final stage. The
wheel is built the way the Dockerfile builds it (``pip wheel --no-deps`` on the build
context that .dockerignore lets through), installed into a fresh virtualenv, and both
entrypoints run from it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from asynctask_worker import __version__
from testbed import images

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|make|build-essential|python3?-dev|"
    r"apt-get|apt|apk|pip|pip3|setuptools|wheel|git|curl|wget)\b"
)


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)


def stages() -> list[Stage]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())  # join continuation lines
    out: list[Stage] = []
    global_args: dict[str, str] = {}  # ARGs before the first FROM: what FROM may name
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        op, _, rest = line.partition(" ")
        if op.upper() == "ARG" and not out:
            name, _, default = rest.strip().partition("=")
            global_args[name] = default
        elif op.upper() == "FROM":
            m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", rest.strip(), re.IGNORECASE)
            assert m, line
            base = re.sub(r"\$\{(\w+)\}", lambda a: global_args[a.group(1)], m.group(1))
            out.append(Stage(base, m.group(2) or ""))
        else:
            assert out, f"instruction before FROM: {line}"
            out[-1].instructions.append((op.upper(), rest.strip()))
    return out


def test_multi_stage_with_pinned_slim_python_bases() -> None:
    all_stages = stages()
    assert len(all_stages) >= 2
    for stage in all_stages:
        image, _, tag = stage.base.partition(":")
        assert image == "python", stage.base
        assert re.fullmatch(r"3\.11\.\d+-slim(-[a-z]+)?", tag), (
            f"{stage.base}: pin python 3.11 slim by its full version tag"
        )
        assert "latest" not in stage.base
    assert all_stages[0].name and all_stages[-1].base == all_stages[0].base, (
        "the runtime stage uses the build stage's base, so the copied virtualenv works"
    )


def test_final_stage_runs_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [arg for op, arg in final.instructions if op == "USER"]
    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit() and int(uid) != 0, users[-1]
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_final_stage_has_no_build_tools() -> None:
    final = stages()[-1]
    for op, arg in final.instructions:
        if op == "RUN":
            assert not BUILD_TOOLS.search(arg), f"build tool in the final stage: RUN {arg}"
        assert op != "ADD", "ADD in the final stage"
        if op == "COPY" and not arg.startswith("--from="):
            *sources, _ = arg.split()
            assert all(src.startswith("examples/") for src in sources), (
                f"the final stage takes the built virtualenv, not sources: COPY {arg}"
            )
    copies = [arg for op, arg in final.instructions if op == "COPY"]
    assert any(arg.startswith(f"--from={stages()[0].name} ") for arg in copies)
    env = " ".join(arg for op, arg in final.instructions if op == "ENV")
    assert "/opt/asynctask/bin" in env, "both entrypoints must be on PATH"


def test_the_image_installs_the_wheel_with_the_operator_extra() -> None:
    """The base distribution is the worker SDK alone; the image also runs the operator."""
    text = re.sub(r"\s+", " ", DOCKERFILE.read_text())
    assert '/opt/asynctask/bin/pip install "$(ls /wheels/asynctask_k8s-*.whl)[operator]"' in text


def test_both_entrypoints_are_declared() -> None:
    text = (REPO / "pyproject.toml").read_text()
    assert 'asynctask-operator = "asynctask_operator._script:main"' in text
    assert 'asynctask-worker = "asynctask_worker.cli:main"' in text
    final = stages()[-1]
    assert any(
        op in ("CMD", "ENTRYPOINT") and "asynctask-operator" in arg
        for op, arg in final.instructions
    ), final.instructions


def build_context(dest: Path) -> None:
    """Copy what .dockerignore lets into the build context (it denies all, then allows)."""
    lines = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", ".dockerignore must start by excluding everything"
    for pattern in (ln[1:].rstrip("/") for ln in lines if ln.startswith("!")):
        src = REPO / pattern
        assert src.exists(), f".dockerignore allows {pattern}, which does not exist"
        target = dest / pattern
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(
                src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
            )
        else:
            shutil.copy2(src, target)


def test_dockerfile_copies_only_what_dockerignore_allows() -> None:
    allowed = {
        ln.strip()[1:].rstrip("/")
        for ln in DOCKERIGNORE.read_text().splitlines()
        if ln.strip().startswith("!")
    }
    for stage in stages():
        for op, arg in stage.instructions:
            if op == "COPY" and not arg.startswith("--from="):
                *sources, _ = arg.split()
                for src in sources:
                    assert src.rstrip("/") in allowed, f"COPY {src}: excluded by .dockerignore"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built as the Dockerfile builds it: pip wheel --no-deps on the context."""
    assert "pip wheel --no-deps --wheel-dir /wheels ." in re.sub(
        r"\s+", " ", DOCKERFILE.read_text()
    )
    context = tmp_path_factory.mktemp("context")
    build_context(context)
    out = tmp_path_factory.mktemp("wheels")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", str(out), "."],
        cwd=context,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (built,) = out.glob("asynctask_k8s-*.whl")
    return built


def test_wheel_holds_the_four_packages_and_nothing_else(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {
        "asynctask_operator",
        "asynctask_worker",
        "asynctask_gateway",
        "asynctask_client",
    }, tops
    for package in tops:
        assert f"{package}/py.typed" in names
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    with zipfile.ZipFile(wheel) as zf:
        text = zf.read(entry_points).decode()
    assert "asynctask-operator = asynctask_operator._script:main" in text
    assert "asynctask-worker = asynctask_worker.cli:main" in text
    assert "asynctask-gateway = asynctask_gateway._script:main" in text
    assert "asynctask = asynctask_client._script:main" in text
    assert "kubectl-asynctask = asynctask_client._script:main" in text


def test_entrypoints_run_from_the_installed_wheel(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = venv / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "--no-deps", "--no-index", "-q", str(wheel)], check=True, timeout=300
    )
    # The dependencies come from the project's .venv (a plain path entry: its own .pth
    # files, such as the editable install of this checkout, are not processed), so the
    # packages themselves can only come from the wheel.
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    deps = Path(sysconfig.get_paths()["purelib"])
    (purelib / "_asynctask_test_deps.pth").write_text(f"{deps}\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    where = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import asynctask_operator, asynctask_worker; "
            "print(asynctask_operator.__file__); print(asynctask_worker.__file__)",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        check=True,
        timeout=60,
    )
    for line in where.stdout.split():
        assert line.startswith(str(purelib)), f"imported from outside the wheel: {line}"
    for command, words in (
        ("asynctask-operator", ["--standalone", "--liveness"]),
        ("asynctask-worker", ["--queues", "--concurrency"]),
        ("asynctask-gateway", ["--port", "ASYNCTASK_GATEWAY_"]),
    ):
        proc = subprocess.run(
            [str(venv / "bin" / command), "--help"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith(f"usage: {command}"), proc.stdout
        assert all(w in proc.stdout for w in words), proc.stdout


def test_the_release_labels_come_from_the_build_arguments() -> None:
    """The final stage labels the image with VERSION, REVISION and SOURCE, the arguments
    the test bed's build (and so make dist) fills, VERSION with the project's one version."""
    final = stages()[-1]
    args = {arg.partition("=")[0] for op, arg in final.instructions if op == "ARG"}
    labels = " ".join(arg for op, arg in final.instructions if op == "LABEL")
    for label, arg in (("version", "VERSION"), ("revision", "REVISION"), ("source", "SOURCE")):
        assert f'org.opencontainers.image.{label}="${{{arg}}}"' in labels, labels
        assert arg in args, f"ARG {arg} must be declared in the final stage"
    built = images.build_args([DOCKERFILE])
    assert set(built) == {"VERSION", "REVISION", "SOURCE"}
    assert built["VERSION"] == images.project_version() == __version__
