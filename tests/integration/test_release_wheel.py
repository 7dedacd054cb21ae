"""The released wheel, as a user gets it: ``make dist`` builds it (and ``twine check`` passes),
``pip install`` puts it into a fresh virtualenv as docs/clients.md says (here with every
extra), and each command prints the one version."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from asynctask_worker import __version__

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMMANDS = ["asynctask", "kubectl-asynctask", "asynctask-operator", "asynctask-gateway"]


def test_the_dist_wheel_installs_and_every_command_prints_the_version(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, str(REPO / "hack" / "dist.py"), "--no-image", "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(REPO / "hack")},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    assert built.stdout.count(": PASSED") == 2, built.stdout  # twine check, wheel and sdist
    (wheel,) = out.glob(f"asynctask_k8s-{__version__}-py3-none-any.whl")
    sums = (out / "SHA256SUMS").read_text()
    assert wheel.name in sums and f"asynctask-{__version__}.tgz" in sums, sums

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "pip"), "install", "-q", "--prefer-binary"]
    installed = subprocess.run(
        [*pip, "--disable-pip-version-check", f"{wheel}[operator,gateway,client]"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    for command in [*COMMANDS, "asynctask-worker"]:
        proc = subprocess.run(
            [str(venv / "bin" / command), "--version"],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, (command, proc.stderr)
        prog = "asynctask" if command == "kubectl-asynctask" else command
        assert proc.stdout == f"{prog} {__version__}\n", (command, proc.stdout)
