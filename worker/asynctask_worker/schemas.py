"""The wire contract as JSON Schema (draft 2020-12), for implementations in other languages.

One schema per message body that crosses RabbitMQ (:data:`MESSAGES`), generated from the
pydantic models of :mod:`asynctask_worker.messages` and checked in under
``docs/protocol/schemas/`` (``docs/protocol.md`` explains them). Regenerate them from the
repository's root after a change to the models::

    python -m asynctask_worker.schemas            # writes docs/protocol/schemas/*.json
    python -m asynctask_worker.schemas --check    # exit 1 if the files differ from the models

The schemas describe what the parsers *accept* (pydantic's validation mode): a field with a
default may be left out, and fields no schema names are allowed (the parsers ignore them).
Imports only the SDK's message models, so a worker author needs nothing else to run it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Final

from pydantic import BaseModel

from asynctask_worker.messages import (
    SCHEMA_VERSION,
    ControlMessage,
    StatusMessage,
    TaskMessage,
)

#: The JSON Schema dialect of every file.
DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
#: Where the schemas are published: ``$id`` is this, the version, then the file name.
BASE_URI: Final = "https://asynctask.dev/protocol"
#: The schema keyword that carries the protocol version (the value of every message's ``v``).
VERSION_KEYWORD: Final = "x-asynctask-protocol-version"
#: Where the repository keeps them, from its root.
DEFAULT_DIRECTORY: Final = Path("docs/protocol/schemas")

#: Each message body, by the file that holds its schema.
MESSAGES: Final[dict[str, type[BaseModel]]] = {
    "task-message.json": TaskMessage,
    "status-message.json": StatusMessage,
    "control-message.json": ControlMessage,
}


def schema_id(filename: str, version: int = SCHEMA_VERSION) -> str:
    """The ``$id`` of one schema file at one protocol version."""
    return f"{BASE_URI}/v{version}/{filename}"


def schema_of(filename: str) -> dict[str, Any]:
    """The JSON Schema of the message kept in ``filename``, with ``$schema``, ``$id`` and the
    protocol version (:data:`VERSION_KEYWORD`)."""
    model = MESSAGES[filename]
    generated = model.model_json_schema(mode="validation")
    return {
        "$schema": DIALECT,
        "$id": schema_id(filename),
        VERSION_KEYWORD: SCHEMA_VERSION,
        **generated,
    }


def render(filename: str) -> str:
    """The file's exact text: two-space indents, keys in the models' order, a final newline."""
    return json.dumps(schema_of(filename), indent=2, ensure_ascii=False) + "\n"


def write_all(directory: Path) -> list[Path]:
    """Write every schema into ``directory``; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for filename in MESSAGES:
        path = directory / filename
        path.write_text(render(filename), encoding="utf-8")
        written.append(path)
    return written


def stale(directory: Path) -> list[str]:
    """The schema files in ``directory`` that are missing or differ from the models."""
    out = []
    for filename in MESSAGES:
        path = directory / filename
        if not path.is_file() or path.read_text(encoding="utf-8") != render(filename):
            out.append(filename)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m asynctask_worker.schemas",
        description="Write (or check) the JSON Schemas of the AsyncTask wire contract.",
    )
    parser.add_argument(
        "directory",
        nargs="?",
        type=Path,
        default=DEFAULT_DIRECTORY,
        help=f"where the schema files go (default: {DEFAULT_DIRECTORY})",
    )
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a file is out of date"
    )
    args = parser.parse_args(argv)
    if args.check:
        out_of_date = stale(args.directory)
        for filename in out_of_date:
            print(f"{args.directory / filename}: out of date", file=sys.stderr)
        if out_of_date:
            print("regenerate with: python -m asynctask_worker.schemas", file=sys.stderr)
        return 1 if out_of_date else 0
    for path in write_all(args.directory):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
