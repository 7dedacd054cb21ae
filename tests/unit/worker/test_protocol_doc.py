"""docs/protocol.md stays true where a machine can tell: the broker objects it lists are
what ``topology`` declares, with the same arguments and bindings; its header names are
``topology``'s; its numbers are the code's; it links every schema file; and its example
messages pass their schemas and the SDK's parser."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel

from asynctask_worker import schemas as wire_schemas
from asynctask_worker import topology
from asynctask_worker.messages import decode

REPO = Path(__file__).resolve().parents[3]
PAGE = REPO / "docs" / "protocol.md"
#: How the page writes the task queue of any ``spec.queue``.
ANY_QUEUE = "<queue>"


def page() -> str:
    return PAGE.read_text(encoding="utf-8")


def section(title: str) -> str:
    """The text of one ``## title`` section of the page."""
    text = page()
    assert text.count(f"\n## {title}\n") == 1, f"docs/protocol.md needs one '## {title}'"
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def table(text: str) -> list[list[str]]:
    """The rows of the first Markdown table in ``text``, header and rule left out."""
    lines = [line.strip() for line in text.splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[start:end]][2:]


def ticks(cell: str) -> list[str]:
    return re.findall(r"`([^`]*)`", cell)


# broker objects ---------------------------------------------------------------------------


class RecordingChannel:
    """Stands in for a pika channel: records what ``topology`` declares."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {}
        self.bindings: set[tuple[str, str, str]] = set()

    def exchange_declare(self, name: str, *, exchange_type: str, durable: bool) -> None:
        self.objects[(name, f"{exchange_type} exchange")] = {"durable": durable, "arguments": {}}

    def queue_declare(self, name: str, *, durable: bool, arguments: dict[str, Any]) -> None:
        kind = "stream" if arguments["x-queue-type"] == "stream" else "quorum queue"
        self.objects[(name, kind)] = {"durable": durable, "arguments": arguments}

    def queue_bind(self, queue: str, exchange: str, routing_key: str = "") -> None:
        self.bindings.add((queue, exchange, routing_key))


def declared() -> RecordingChannel:
    channel = RecordingChannel()
    topology.declare_all(channel, [ANY_QUEUE])
    return channel


def documented_objects() -> dict[tuple[str, str], list[str]]:
    """The page's broker objects table: (name, kind) → its cells."""
    rows = table(section("Broker objects"))
    return {(ticks(row[0])[0], row[1]): row for row in rows}


def test_the_page_lists_every_broker_object_topology_declares_and_no_other() -> None:
    assert set(documented_objects()) == set(declared().objects)


def test_each_documented_broker_object_has_the_declared_durability_and_arguments() -> None:
    channel = declared()
    for key, (_, _, durable, arguments, _) in documented_objects().items():
        want = channel.objects[key]
        assert (durable == "yes") is want["durable"], key
        pairs = dict(tick.split(": ", 1) for tick in ticks(arguments))
        assert pairs == {k: str(v) for k, v in want["arguments"].items()}, key


def test_each_documented_binding_is_declared_and_every_binding_documented() -> None:
    documented = set()
    for (name, _), row in documented_objects().items():
        bound = row[4]
        if bound.startswith("`"):
            names = ticks(bound)
            documented.add((name, names[0], names[1] if len(names) > 1 else ""))
    assert documented == declared().bindings


def test_every_broker_name_the_page_mentions_is_topology_s() -> None:
    channel = declared()
    known = {name for name, _ in channel.objects} | {"asynctask.sync"}
    patterns = {key for _, _, key in channel.bindings if key}
    mentioned = set(re.findall(r"(?<![\w/.-])asynctask\.[a-z][a-z0-9.<>#-]*[a-z>#]", page()))
    examples = {m for m in mentioned if m.startswith(topology.TASK_QUEUE_PREFIX)} - known
    assert examples <= {topology.task_queue_name("resize")} | patterns
    assert mentioned - examples - patterns <= known
    assert known <= mentioned


# headers ----------------------------------------------------------------------------------

HEADERS = {
    value
    for name, value in vars(topology).items()
    if name.endswith("_HEADER") and isinstance(value, str)
}


def test_the_page_names_every_asynctask_header_and_only_those() -> None:
    mentioned = set(re.findall(r"`((?:x-)?asynctask-[a-z-]*[a-z])`", page()))
    assert mentioned - {wire_schemas.VERSION_KEYWORD} == HEADERS


def test_the_header_tables_give_each_header_once() -> None:
    rows = [
        row[0]
        for text in page().split("| header | value |")[1:]
        for row in table("| header | value |" + text)
    ]
    named = [ticks(cell)[0] for cell in rows]
    assert sorted(named) == sorted(HEADERS)


# numbers ----------------------------------------------------------------------------------


def resolve(path: str) -> Any:
    """The value a dotted path names: a module's constant, a settings field's default, or a
    parameter's default (``module.Class(parameter)``)."""
    parameter = None
    if match := re.fullmatch(r"(.+)\((\w+)\)", path):
        path, parameter = match.groups()
    parts = path.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            value: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for i, attr in enumerate(parts[cut:], start=cut):
            last = i == len(parts) - 1
            if last and isinstance(value, type) and issubclass(value, BaseModel):
                return value.model_fields[attr].default
            value = getattr(value, attr)
        if parameter is not None:
            return inspect.signature(value).parameters[parameter].default
        return value
    raise LookupError(path)


NUMBERS = table(section("Numbers"))


@pytest.mark.parametrize(("what", "value", "where"), NUMBERS, ids=[row[0] for row in NUMBERS])
def test_each_number_of_the_page_is_the_code_s(what: str, value: str, where: str) -> None:
    assert resolve(ticks(where)[0]) == json.loads(ticks(value)[0]), what


def test_the_numbers_table_is_read_whole() -> None:
    assert len(NUMBERS) >= 19


# schemas and examples ---------------------------------------------------------------------


def test_the_page_links_every_schema_file() -> None:
    links = set(re.findall(r"\]\((protocol/schemas/[^)]+)\)", page()))
    assert links == {f"protocol/schemas/{name}" for name in wire_schemas.MESSAGES}
    assert all((PAGE.parent / link).is_file() for link in links)


def examples() -> list[tuple[str, str]]:
    """The page's example messages: (schema file, JSON text)."""
    return re.findall(r"<!-- example: (\S+) -->\n```json\n(.*?)^```$", page(), re.M | re.S)


def test_the_page_has_an_example_of_each_message() -> None:
    assert {name for name, _ in examples()} == set(wire_schemas.MESSAGES)


@pytest.mark.parametrize(("filename", "text"), examples())
def test_each_example_passes_its_schema_and_the_sdk_s_parser(filename: str, text: str) -> None:
    schema = json.loads((REPO / "docs" / "protocol" / "schemas" / filename).read_text())
    Draft202012Validator(schema).validate(json.loads(text))
    model = wire_schemas.MESSAGES[filename]
    message = decode(model, text.encode())  # type: ignore[type-var]
    assert message.model_dump(mode="json") == {
        **message.model_dump(mode="json"),
        **{
            k: v
            for k, v in json.loads(text).items()
            if k not in ("at", "published_at", "started_at")
        },
    }


def test_every_link_within_the_page_names_one_of_its_headings() -> None:
    headings = re.findall(r"^#+ (.+)$", page(), re.M)
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    links = set(re.findall(r"\]\(#([^)]+)\)", page()))
    assert links and links <= slugs, links - slugs
