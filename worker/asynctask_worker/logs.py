"""The log line formats every AsyncTask component writes: JSON lines, or text for a person.

The worker, the operator and the gateway each log JSON with the same four fields first
(``time``, ``level``, ``logger``, ``message``), then the fields of their own (the worker's
thread and task ids, the operator's object), then the ``exception`` with its traceback, so
that a multi-line traceback stays inside one line of JSON. It lives in the SDK because
every installation has the SDK; it imports nothing but the standard library.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

#: The text format of every component (the worker appends its task ids to it).
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

#: A component's own fields of a record, written after the common ones.
Fields = Callable[[logging.LogRecord], Mapping[str, Any]]


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, then each of ``fields`` in
    order, then the exception if any. Values JSON cannot hold are written as text."""

    def __init__(self, *fields: Fields) -> None:
        super().__init__()
        self._fields = fields

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for fields in self._fields:
            entry.update(fields(record))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)
