"""Worker logging: text or JSON lines, with the task's ids on every record about a task.

Records written while a handler runs (by any logger: the handler's own, a library's) get
the ids of the task from a context variable; records the runtime writes about a task
carry them as ``extra``. Either way they show up as fields in JSON and as a suffix in text.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

from asynctask_worker.context import LOG_FIELDS, current_task
from asynctask_worker.logs import TEXT_FORMAT, JsonFormatter


class TaskFieldsFilter(logging.Filter):
    """Adds the current task's ids to records that do not have them yet."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = current_task.get()
        if ctx is not None and not hasattr(record, "task_uid"):
            for key, value in ctx.log_fields.items():
                setattr(record, key, value)
        return True


def thread_field(record: logging.LogRecord) -> dict[str, Any]:
    return {"thread": record.threadName}


def task_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The task's ids, where the record has them (from ``extra`` or :class:`TaskFieldsFilter`)."""
    return {k: getattr(record, k) for k in LOG_FIELDS if hasattr(record, k)}


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message [task=ns/name uid=... attempt=N]``."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if hasattr(record, "task_uid"):
            suffix = (
                f" [task={getattr(record, 'task_namespace', '?')}/"
                f"{getattr(record, 'task_name', '?')} uid={record.task_uid} "
                f"attempt={getattr(record, 'attempt', '?')}]"
            )
            head, sep, rest = text.partition("\n")  # keep tracebacks below the suffix
            text = head + suffix + sep + rest
        return text


def make_handler(fmt: str = "text", stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(
        JsonFormatter(thread_field, task_fields) if fmt == "json" else TextFormatter()
    )
    handler.addFilter(TaskFieldsFilter())
    return handler


def configure_logging(
    fmt: str = "text", level: str = "INFO", stream: IO[str] | None = None
) -> logging.Handler:
    """Configure the root logger for a worker process (the CLI and process-mode children)."""
    handler = make_handler(fmt, stream)
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
    logging.getLogger("pika").setLevel(logging.WARNING)
    return handler
