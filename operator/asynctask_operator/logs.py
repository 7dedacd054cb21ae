"""Operator logging: text for a person at a terminal, JSON lines for a log pipeline.

The chart runs the operator with JSON (``ASYNCTASK_LOG_FORMAT=json``), like its workers, so
``kubectl logs`` output is parseable line by line: a multi-line traceback stays inside one
record's ``exception`` field instead of spilling into lines of its own.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from asynctask_worker.logs import TEXT_FORMAT, JsonFormatter

LOG_FORMATS = ("text", "json")


def kopf_object(record: logging.LogRecord) -> dict[str, Any]:
    """kopf's per-object records carry the object's reference (``k8s_ref``): its namespace
    and name go in the ``object`` field."""
    ref = getattr(record, "k8s_ref", None)
    if not isinstance(ref, dict):
        return {}
    return {"object": {k: ref[k] for k in ("namespace", "name") if k in ref}}


def formatter(fmt: str) -> logging.Formatter:
    """The operator's JSON lines (with the kopf object), or text."""
    return JsonFormatter(kopf_object) if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(fmt: str, verbose: bool) -> None:
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: expected one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True
    )
    logging.getLogger("pika").setLevel(logging.WARNING)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    if not verbose:
        # kopf logs every handled watch event at INFO; the operator logs what matters.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
