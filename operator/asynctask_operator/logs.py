"""Operator logging: text for a person at a terminal, JSON lines for a log pipeline.

The chart runs the operator with JSON (``ASYNCTASK_LOG_FORMAT=json``), like its workers, so
``kubectl logs`` output is parseable line by line: a multi-line traceback stays inside one
record's ``exception`` field instead of spilling into lines of its own.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and, if any, the exception.
    kopf's per-object records carry the object's reference (``k8s_ref``); it is kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict):
            entry["object"] = {k: ref[k] for k in ("namespace", "name") if k in ref}
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(fmt: str, verbose: bool) -> None:
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not verbose:
        # kopf logs every handled watch event at INFO; the operator logs what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
