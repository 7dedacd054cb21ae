"""The TypeScript worker SDK's own checks, run by the Python suite so that ``make test`` (and
CI) fails when they fail: ``npm test`` in ``worker-ts/`` is ESLint (type-checked rules),
Prettier, the TypeScript build (strict) and the ``node --test`` unit tests of its pure parts.
``npm pack --dry-run`` checks that the package packs with its built files and no more.

``hack/install-deps.sh`` installs ``worker-ts/node_modules`` (``npm ci`` from the lockfile).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

WORKER_TS = Path(__file__).resolve().parents[3] / "worker-ts"


def npm(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("npm")
    assert exe, "npm is needed for worker-ts/ (Node.js 20 or later)"
    assert (WORKER_TS / "node_modules").is_dir(), "run hack/install-deps.sh (npm ci in worker-ts/)"
    return subprocess.run(
        [exe, *args], cwd=WORKER_TS, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module")
def npm_test() -> subprocess.CompletedProcess[str]:
    return npm("test")


def test_lint_typecheck_and_unit_tests_pass(npm_test: subprocess.CompletedProcess[str]) -> None:
    out = npm_test.stdout + npm_test.stderr
    assert npm_test.returncode == 0, out[-6000:]
    assert "# fail 0" in out, out[-3000:]
    passed = [line for line in out.splitlines() if line.startswith("# pass ")]
    assert passed and int(passed[0].split()[2]) >= 20, out[-3000:]


def test_the_package_packs_its_build(npm_test: subprocess.CompletedProcess[str]) -> None:
    assert npm_test.returncode == 0  # the build is in dist/
    packed = npm("pack", "--dry-run", "--json")
    assert packed.returncode == 0, packed.stderr[-3000:]
    files = {f["path"] for f in json.loads(packed.stdout)[0]["files"]}
    assert {"package.json", "README.md", "dist/src/index.js", "dist/src/index.d.ts"} <= files
    assert not {f for f in files if f.startswith(("dist/test/", "src/", "node_modules/"))}
