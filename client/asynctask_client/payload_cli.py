"""The CLI's large payloads (docs/payloads.md), through the gateway:

* ``asynctask submit QUEUE --request-file PATH [--content-type T]``: the file is uploaded
  (streamed; ``-`` reads standard input, spooled to a temporary file first since an upload
  needs its length) and the task created with its ``requestRef``;
* ``asynctask result NAME [-o FILE]``: the result streamed to standard output, or to FILE
  (``-o json``/``-o yaml`` still print it in that format), checked against its sha256.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path
from typing import IO, Any

from asynctask_client.client import Task

#: ``-o`` values that name a format, not a file (``-o ./json`` writes a file named json).
FORMATS = ("json", "yaml")


class RequestFileError(Exception):
    """``--request-file`` cannot be used (exit code 2)."""


def payload_arguments(submit: argparse.ArgumentParser) -> None:
    submit.add_argument(
        "--request-file",
        metavar="PATH",
        help="upload PATH's bytes as the request (through the gateway; - reads standard "
        "input); the handler gets a Payload, or the parsed value for application/json",
    )
    submit.add_argument(
        "--content-type",
        metavar="TYPE",
        help="the uploaded request's content type (default application/octet-stream)",
    )


def request_of(args: argparse.Namespace, inline: Any, spool: list[IO[bytes]]) -> Any:
    """The request to submit: ``inline`` (``--request``), or the ``--request-file`` to
    upload (a Path, or standard input spooled to a temporary file kept in ``spool``)."""
    if args.request_file is None:
        if args.content_type is not None:
            raise RequestFileError("--content-type goes with --request-file")
        return inline
    if args.request != "{}":
        raise RequestFileError("give --request or --request-file, not both")
    if args.request_file == "-":
        spooled = tempfile.TemporaryFile()  # noqa: SIM115 - the caller closes the spool
        shutil.copyfileobj(sys.stdin.buffer, spooled)
        spooled.seek(0)
        spool.append(spooled)
        return spooled
    path = Path(args.request_file)
    if not path.is_file():
        raise RequestFileError(f"--request-file {path}: no such file")
    return path


def result_target(args: argparse.Namespace) -> str | None:
    """The file ``result -o FILE`` names (then ``args.output`` is cleared), or None."""
    output = getattr(args, "output", None)
    if output is None or output in FORMATS:
        return None
    args.output = None
    return str(output)


def write_result(task: Task, target: str | None) -> None:
    """The result of a task that succeeded, streamed to ``target`` or standard output."""
    if target is not None:
        task.download(target)
        return
    sys.stdout.flush()
    task.download(sys.stdout.buffer)
    sys.stdout.buffer.flush()
