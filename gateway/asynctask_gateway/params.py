"""Parsing what clients send in headers and query strings (pure functions)."""

from __future__ import annotations

import re

from asynctask_gateway import patterns
from asynctask_gateway.settings import MAX_WAIT_SECONDS

_DURATION = re.compile(patterns.DURATION)
_WAIT = re.compile(r"^\s*wait\s*=\s*\"?(\d+)\"?\s*$", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``30s``, ``1.5s``, ``500ms``, ``1m`` or plain seconds (``30``)."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"timeout must be a duration like 30s, 500ms or 1m, not {text!r}")
    value, unit = float(match.group(1)), match.group(3) or "s"
    return value / 1000 if unit == "ms" else value * 60 if unit == "m" else value


def wait_timeout(text: str | None, default: float) -> float:
    """The long-poll's timeout: the query's (or the default, when absent), capped below
    proxy limits."""
    seconds = default if text is None else parse_duration(text)
    return min(seconds, MAX_WAIT_SECONDS)


def prefer_wait(values: list[str]) -> int | None:
    """The ``wait`` preference of RFC 7240 ``Prefer`` headers (several headers or
    comma-separated preferences), capped at the longest wait; ``None`` when not asked."""
    for value in values:
        for preference in value.split(","):
            match = _WAIT.match(preference.split(";")[0])
            if match:
                return min(int(match.group(1)), int(MAX_WAIT_SECONDS))
    return None


def etag_matches(if_none_match: str | None, resource_version: str) -> bool:
    """Whether ``If-None-Match`` names this resourceVersion (weak tags compare too)."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag.strip('"') == resource_version:
            return True
    return False


def parse_flag(name: str, text: str | None) -> bool:
    """A boolean query parameter: ``true`` or ``false`` (absent: false); anything else is
    a ValueError that names it."""
    if text is None or text == "false":
        return False
    if text == "true":
        return True
    raise ValueError(f"{name} must be true or false, not {text[:40]!r}")
