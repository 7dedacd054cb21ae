"""The operator's JSON log lines: parseable, one per record, tracebacks inside."""

from __future__ import annotations

import json
import logging

import pytest

from asynctask_operator.logs import configure_logging, formatter


def _record(exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            import sys

            exc_info = sys.exc_info()
    record = logging.LogRecord(
        "kopf.objects", logging.ERROR, __file__, 1, "failed %s", ("x",), exc_info
    )
    record.k8s_ref = {"namespace": "ns", "name": "t1", "uid": "u"}
    return record


def test_one_json_object_per_record_with_the_object_and_exception() -> None:
    line = formatter("json").format(_record(exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed x" and entry["level"] == "ERROR"
    assert entry["object"] == {"namespace": "ns", "name": "t1"}
    assert "RuntimeError: boom" in entry["exception"]


def test_unknown_format_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="expected one of text, json"):
        configure_logging("yaml", verbose=False)
