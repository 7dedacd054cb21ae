"""Listing tasks from the cache: label selectors, filters and pagination (pure functions).

Label selectors have Kubernetes' syntax (``a=b``, ``a==b``, ``a!=b``, ``a``, ``!a``,
``a in (x,y)``, ``a notin (x,y)``, comma = and). The continue token is opaque to clients:
the last name of the page, so a page never repeats or skips a task that still exists
(tasks are listed by name).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from asynctask_gateway import patterns
from asynctask_gateway.cache import Entry
from asynctask_worker.messages import Phase

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
Requirement = Callable[[Mapping[str, str]], bool]
_SET = re.compile(patterns.SELECTOR_SET)
_EQ = re.compile(patterns.SELECTOR_EQ)
_EXISTS = re.compile(patterns.SELECTOR_EXISTS)


def _split_terms(selector: str) -> list[str]:
    """Split on commas outside parentheses."""
    terms, depth, current = [], 0, ""
    for char in selector:
        depth += char == "("
        depth -= char == ")"
        if char == "," and depth == 0:
            terms.append(current)
            current = ""
        else:
            current += char
    terms.append(current)
    return terms


def _term(text: str) -> Requirement:
    if match := _SET.match(text):
        negated, key, op, values = match.groups()
        if negated:
            raise ValueError(f"invalid label selector term {text!r}")
        allowed = {v.strip() for v in values.split(",") if v.strip()}
        if op == "in":
            return lambda labels: labels.get(key) in allowed
        return lambda labels: labels.get(key) not in allowed
    if match := _EQ.match(text):
        key, op, value = match.groups()
        if op == "!=":
            return lambda labels: labels.get(key) != value
        return lambda labels: labels.get(key) == value
    if match := _EXISTS.match(text):
        negated, key = match.groups()
        return (lambda labels: key not in labels) if negated else (lambda labels: key in labels)
    raise ValueError(f"invalid label selector term {text!r}")


def parse_selector(selector: str) -> Requirement:
    """A predicate over labels; raises ValueError for a selector that does not parse."""
    requirements = [_term(t) for t in _split_terms(selector) if t.strip()]
    return lambda labels: all(r(labels) for r in requirements)


class SelectorRequired(ValueError):
    """A bulk action's selector selects everything (it has no term)."""


def parse_required_selector(selector: str) -> Requirement:
    """:func:`parse_selector` for a bulk action, which must not select everything: a
    selector without a term (empty, or commas and white space only) is a ValueError. Only
    ``patterns.WS`` is white space here, as in ``patterns.BULK_SELECTOR``: any other
    character is part of a term, never dropped."""
    terms = [t for t in _split_terms(selector) if t.strip(patterns.WS_CHARS)]
    if not terms:
        raise SelectorRequired(
            "a labelSelector with at least one term is required: a bulk action never "
            "acts on every task of a namespace"
        )
    requirements = [_term(t) for t in terms]
    return lambda labels: all(r(labels) for r in requirements)


def encode_continue(name: str) -> str:
    return base64.urlsafe_b64encode(name.encode()).decode().rstrip("=")


def decode_continue(token: str) -> str:
    """The name a page ends at. Any unpadded base64url (``patterns.CONTINUE``) is a token:
    its bytes are read as Latin-1, so a token a client made up lists after that string."""
    if not patterns.matches(patterns.CONTINUE, token):
        raise ValueError("invalid continue token")
    try:
        padded = token + "=" * (-len(token) % 4)
        return base64.b64decode(padded, altchars=b"-_", validate=True).decode("latin-1")
    except (binascii.Error, ValueError) as exc:
        raise ValueError("invalid continue token") from exc


def parse_limit(text: str | None) -> int:
    """``limit``: absent, the default; else a decimal integer from 1 to ``MAX_LIMIT``."""
    if text is None:
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()):
        raise ValueError("limit must be an integer")
    limit = int(text)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    return limit


@dataclass(frozen=True)
class Query:
    queue: str | None = None
    phase: Phase | None = None
    selector: Requirement | None = None
    limit: int = DEFAULT_LIMIT
    after: str = ""

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> Query:
        """The query of ``?queue=&phase=&labelSelector=&limit=&continue=`` (ValueError
        names the parameter that is wrong)."""
        phase = params.get("phase")
        if phase is not None and phase not in {p.value for p in Phase}:
            raise ValueError(f"phase must be one of {', '.join(p.value for p in Phase)}")
        selector = params.get("labelSelector") or ""
        return cls(
            queue=params.get("queue") or None,
            phase=Phase(phase) if phase else None,
            selector=parse_selector(selector) if selector.strip() else None,
            limit=parse_limit(params.get("limit")),
            after=decode_continue(params["continue"]) if params.get("continue") else "",
        )

    @classmethod
    def parse_bulk(cls, params: Mapping[str, str]) -> Query:
        """The query of a bulk action, ``?labelSelector=&limit=&continue=`` (the selector
        is required: see :func:`parse_required_selector`)."""
        return cls(
            selector=parse_required_selector(params.get("labelSelector") or ""),
            limit=parse_limit(params.get("limit")),
            after=decode_continue(params["continue"]) if params.get("continue") else "",
        )

    def matches(self, entry: Entry) -> bool:
        return (
            (self.queue is None or entry.queue == self.queue)
            and (self.phase is None or entry.view.phase is self.phase)
            and (self.selector is None or self.selector(entry.labels))
        )


def page(entries: Iterable[Entry], query: Query) -> tuple[list[Entry], str | None]:
    """One page of ``entries`` (sorted by name) and the token of the next, if any."""
    items: list[Entry] = []
    for entry in entries:
        if entry.view.name <= query.after or not query.matches(entry):
            continue
        if len(items) == query.limit:
            return items, encode_continue(items[-1].view.name)
        items.append(entry)
    return items, None
