"""The one JSON log line format of the worker, the operator and the gateway."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from asynctask_worker.logs import JsonFormatter


def _record(exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    return logging.LogRecord("a.logger", logging.WARNING, __file__, 1, "hello %s", ("x",), exc_info)


def test_the_common_fields_come_first_then_the_exception_on_one_line() -> None:
    line = JsonFormatter().format(_record(exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert list(entry) == ["time", "level", "logger", "message", "exception"]
    assert (entry["level"], entry["logger"], entry["message"]) == ("WARNING", "a.logger", "hello x")
    assert "RuntimeError: boom" in entry["exception"]


def test_a_components_fields_follow_in_order_and_odd_values_become_text() -> None:
    def first(record: logging.LogRecord) -> dict[str, Any]:
        return {"thread": record.threadName, "when": object}

    def second(record: logging.LogRecord) -> dict[str, Any]:
        return {"task_uid": "u1"}

    entry = json.loads(JsonFormatter(first, second).format(_record()))
    assert list(entry) == ["time", "level", "logger", "message", "thread", "when", "task_uid"]
    assert entry["when"] == str(object) and entry["task_uid"] == "u1"
    assert "exception" not in entry
