"""The dev stack's large-result example (examples/report.yaml): its result is over the
default offload threshold, so `make dev` shows a stored result (docs/payloads.md)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

import example_tasks
from asynctask_worker.payloads import DEFAULT_THRESHOLD_BYTES

REPO = Path(__file__).resolve().parents[3]


def test_the_report_example_is_stored_not_inlined() -> None:
    task = yaml.safe_load((REPO / "examples" / "report.yaml").read_text())
    assert task["spec"]["queue"] == "report"
    result = example_tasks.report(example_tasks.ReportRequest(**task["spec"]["request"]))
    size = len(json.dumps(result, separators=(",", ":")))
    assert size > DEFAULT_THRESHOLD_BYTES, size
    rows = result["rows"]
    assert isinstance(rows, list) and rows[-1] == {
        "id": 4999,
        "name": "item-004999",
        "value": 6248.75,
    }
