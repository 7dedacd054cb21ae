"""The README's first command works: the dev stack runs the example task to Succeeded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
REPO = Path(__file__).resolve().parents[2]


def test_devstack_runs_the_example_task() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "hack")}
    proc = subprocess.run(
        [sys.executable, "-m", "testbed.devstack", "--once"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert 'hello: Succeeded {"greeting":"Hello, AsyncTask!","steps":5}' in output
    # Large payloads are on: the report's ~240 KiB result is in the bucket, the task holds
    # its reference (docs/payloads.md), and the store reports the referenced size.
    assert "report: Succeeded; its result is stored in the bucket, not in the task" in output
    assert "240544 bytes application/json" in output and "(the store says 240544 bytes)" in output
    rows = [line.split() for line in proc.stdout.splitlines() if line.startswith("hello ")]
    assert [r[2] for r in rows if len(r) == 5][-1] == "Succeeded", output
    # A clean run logs no errors; the logs hold this run only (each run starts them anew).
    for name, line in (
        ("operator.log", "queued default/hello"),
        ("worker.log", "task default/hello attempt 1: Succeeded"),
        ("worker.log", "task default/report attempt 1: Succeeded"),
    ):
        log = (REPO / ".devstack" / name).read_text()
        assert log.count(line) == 1, log
        assert not [row for row in log.splitlines() if " ERROR " in row or "Traceback" in row], log
