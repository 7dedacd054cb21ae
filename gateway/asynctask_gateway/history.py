"""The history listing's query (pure): what ``GET …/history`` accepts, turned into SQL
conditions with every client value a bound parameter, never text of the statement.

Filters: ``queue``, ``phase``, ``labelSelector`` (Kubernetes' syntax, as the live list),
``creator``, ``since`` and ``until`` (RFC 3339, on the finish time), ``limit`` (1 to 500) and
``continue``: an opaque token holding the last row's ``(finished_at, uid)``, so pages are a
keyset walk down the index, newest first, however deep they go (no OFFSET). Anything that
does not parse is a ValueError, which the handler answers with 400.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from asynctask_gateway import patterns
from asynctask_gateway.listing import _split_terms, parse_limit
from asynctask_worker.messages import Phase

_SET = re.compile(patterns.SELECTOR_SET)
_EQ = re.compile(patterns.SELECTOR_EQ)
_EXISTS = re.compile(patterns.SELECTOR_EXISTS)
#: At most this many terms in a selector, and values in a set (a bounded query).
MAX_TERMS = 20
#: The longest filter value taken (queue, creator, a label value).
MAX_TEXT = 512


def parse_time(name: str, text: str) -> datetime:
    if not patterns.matches(patterns.RFC3339_TIME, text):
        raise ValueError(f"{name} must be an RFC 3339 time such as 2026-12-05T12:00:00Z")
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError as exc:
        raise ValueError(f"{name} is not a real date and time: {text!r}") from exc


def _text(name: str, text: str | None) -> str | None:
    if text is None or text == "":
        return None
    if len(text) > MAX_TEXT or "\x00" in text:
        raise ValueError(f"{name} is too long or holds a NUL character")
    return text


def selector_sql(selector: str) -> tuple[list[str], list[Any]]:
    """SQL conditions on ``labels`` (jsonb) for a label selector, and their parameters."""
    terms = [t for t in _split_terms(selector) if t.strip(patterns.WS_CHARS)]
    if len(terms) > MAX_TERMS:
        raise ValueError(f"labelSelector has more than {MAX_TERMS} terms")
    conditions: list[str] = []
    params: list[Any] = []
    for term in terms:
        if match := _SET.match(term):
            negated, key, op, values = match.groups()
            allowed = sorted({v.strip() for v in values.split(",") if v.strip()})
            if negated or len(allowed) > MAX_TERMS:
                raise ValueError(f"invalid label selector term {term!r}")
            inside = "coalesce(labels ->> %s = ANY(%s), false)"
            conditions.append(inside if op == "in" else f"NOT {inside}")
            params += [key, allowed]
        elif match := _EQ.match(term):
            key, op, value = match.groups()
            contains = "labels @> %s::jsonb"
            conditions.append(f"NOT {contains}" if op == "!=" else contains)
            params.append(json.dumps({key: value}))
        elif match := _EXISTS.match(term):
            negated, key = match.groups()
            conditions.append("NOT labels ? %s" if negated else "labels ? %s")
            params.append(key)
        else:
            raise ValueError(f"invalid label selector term {term!r}")
    return conditions, params


def encode_continue(finished_at: datetime, uid: str) -> str:
    raw = json.dumps([finished_at.isoformat(), uid]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[datetime, str]:
    """The row a page ends at; ValueError for a token this gateway did not make."""
    if not patterns.matches(patterns.CONTINUE, token) or len(token) > 1024:
        raise ValueError("invalid continue token")
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        at, uid = json.loads(raw)
        if not isinstance(at, str) or not isinstance(uid, str):
            raise ValueError("invalid continue token")
        return datetime.fromisoformat(at), uid
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise ValueError("invalid continue token") from exc


@dataclass(frozen=True)
class HistoryQuery:
    """Conditions (SQL with ``%s`` placeholders) and their parameters, the page size and
    where the page starts."""

    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    limit: int = 100
    after: tuple[datetime, str] | None = None

    @classmethod
    def parse(cls, params: Any) -> HistoryQuery:
        """``?queue=&phase=&labelSelector=&creator=&since=&until=&limit=&continue=``."""
        conditions: list[str] = []
        values: list[Any] = []
        for column in ("queue", "creator"):
            if (text := _text(column, params.get(column))) is not None:
                conditions.append(f"{column} = %s")
                values.append(text)
        phase = params.get("phase")
        if phase is not None:
            if phase not in {p.value for p in Phase}:
                raise ValueError(f"phase must be one of {', '.join(p.value for p in Phase)}")
            conditions.append("phase = %s")
            values.append(phase)
        since, until = params.get("since"), params.get("until")
        start = parse_time("since", since) if since is not None else None
        end = parse_time("until", until) if until is not None else None
        if start is not None and end is not None and start > end:
            raise ValueError("since is after until")
        if start is not None:
            conditions.append("finished_at >= %s")
            values.append(start)
        if end is not None:
            conditions.append("finished_at < %s")
            values.append(end)
        selector = params.get("labelSelector") or ""
        if len(selector) > 4096:
            raise ValueError("labelSelector is too long")
        more, more_values = selector_sql(selector)
        token = params.get("continue")
        return cls(
            conditions + more,
            values + more_values,
            parse_limit(params.get("limit")),
            decode_continue(token) if token else None,
        )
