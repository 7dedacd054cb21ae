"""The history listing's query (pure): what ``GET …/history`` accepts, turned into SQL
conditions with every client value a bound parameter, never text of the statement.

Filters: ``queue``, ``phase``, ``labelSelector`` (Kubernetes' syntax, as the live list),
``creator``, ``since`` and ``until`` (RFC 3339, on the finish time), ``limit`` (1 to 500) and
``continue``: an opaque token holding the last row's ``(finished_at, uid)``, so pages are a
keyset walk down the index, newest first, however deep they go (no OFFSET). Anything that
does not parse is a ValueError, which the handler answers with 400.

A page is read in two steps (:func:`keys_statement`, then :func:`rows_statement`): the keys
of the rows that may match, from the index carrying ``labels_key`` (a bounded copy of the
labels, NULL when they are long or the row predates it) without reading the table, then
those rows whole, checked against every condition on their full ``labels``. A row whose
copy is NULL is only a candidate; the second step decides, so a selector matches exactly
the rows it would match on ``labels`` alone.
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
TABLE = "asynctask_history"
_ORDER = "ORDER BY finished_at DESC, uid DESC"


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


def selector_sql(selector: str, column: str = "labels") -> tuple[list[str], list[Any]]:
    """SQL conditions on ``column`` (jsonb: ``labels`` or ``labels_key``) for a label
    selector, and their parameters."""
    if column not in ("labels", "labels_key"):
        raise ValueError(f"not a labels column: {column!r}")
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
            inside = f"coalesce({column} ->> %s = ANY(%s), false)"
            conditions.append(inside if op == "in" else f"NOT {inside}")
            params += [key, allowed]
        elif match := _EQ.match(term):
            key, op, value = match.groups()
            contains = f"{column} @> %s::jsonb"
            conditions.append(f"NOT {contains}" if op == "!=" else contains)
            params.append(json.dumps({key: value}))
        elif match := _EXISTS.match(term):
            negated, key = match.groups()
            conditions.append(f"NOT {column} ? %s" if negated else f"{column} ? %s")
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
    where the page starts; the label selector's conditions apart, on ``labels`` and on
    ``labels_key`` (the same parameters)."""

    conditions: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)
    limit: int = 100
    after: tuple[datetime, str] | None = None
    labels: list[str] = field(default_factory=list)
    labels_key: list[str] = field(default_factory=list)
    label_params: list[Any] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None

    @property
    def label_indexed(self) -> bool:
        """The selector has a term the GIN index on ``labels_key`` answers (``k=v``, ``k``):
        a bitmap of its matches is a plan (:mod:`history_plan`)."""
        return any(c.startswith(("labels_key @>", "labels_key ?")) for c in self.labels_key)

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
        labels, label_values = selector_sql(selector)
        labels_key, _ = selector_sql(selector, "labels_key")
        token = params.get("continue")
        return cls(
            conditions,
            values,
            parse_limit(params.get("limit")),
            decode_continue(token) if token else None,
            labels,
            labels_key,
            label_values,
            start,
            end,
        )


def keys_statement(
    namespace: str, query: HistoryQuery, after: tuple[datetime, str] | None, limit: int
) -> tuple[str, list[Any]]:
    """The first step of a page: the keys ``(finished_at, uid)`` of at most ``limit`` rows
    after ``after`` that may match, newest first, from columns the keyset index holds. A
    row whose ``labels_key`` is NULL is a candidate for :func:`rows_statement` to decide."""
    conditions = ["namespace = %s", *query.conditions]
    params: list[Any] = [namespace, *query.params]
    if after is not None:
        conditions.append("(finished_at, uid) < (%s, %s)")
        params += list(after)
    if query.labels_key:
        conditions.append(f"(labels_key IS NULL OR ({' AND '.join(query.labels_key)}))")
        params += query.label_params
    sql = f"SELECT finished_at, uid FROM {TABLE} WHERE {' AND '.join(conditions)} {_ORDER} LIMIT %s"
    return sql, [*params, limit]


def rows_statement(
    namespace: str, query: HistoryQuery, keys: list[tuple[datetime, str]], columns: str
) -> tuple[str, list[Any]]:
    """The second step: the rows of these keys (non-empty) that match every condition,
    the selector's on the full ``labels``, newest first. The keys' time span bounds the
    partitions searched."""
    times = [at for at, _ in keys]
    conditions = [
        "namespace = %s",
        "finished_at >= %s",
        "finished_at <= %s",
        "(finished_at, uid) IN (SELECT * FROM unnest(%s::timestamptz[], %s::text[]))",
        *query.conditions,
        *query.labels,
    ]
    params = [namespace, min(times), max(times), times, [uid for _, uid in keys]]
    params += [*query.params, *query.label_params]
    sql = f"SELECT {columns} FROM {TABLE} WHERE {' AND '.join(conditions)} {_ORDER}"
    return sql, params
