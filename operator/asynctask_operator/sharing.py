"""Values that many tasks hold alike, held once: what keeps 100k tracked tasks small.

A status parsed from a watch event is a fresh tree of dicts and strings per object, and
most of it is the same across tasks: the keys, the phase, the reasons, the messages, and
the four conditions (which differ only in ``lastTransitionTime``, whole seconds, so tasks
that changed in the same second hold identical ones). A spec is the same across the tasks
of one kind but for its ``request``. :class:`Shared` hands out one copy of each of those:

* :meth:`Shared.status` rebuilds a status with shared strings and shared condition lists;
* :meth:`Shared.spec` parses a spec without its request once per distinct spec;
* :func:`pack_request` keeps the request apart, as compact JSON.

Everything handed out is shared between tasks, so it is never changed in place: the status
functions (:mod:`status`) build new dicts and lists, and specs are frozen models.
The pool is bounded: when full it starts again (what tasks hold stays valid; only later
values are no longer shared with earlier ones).
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from asynctask_operator.spec import AsyncTaskSpec
from asynctask_worker.messages import MAX_REQUEST_DEPTH, json_depth

#: Strings longer than this are kept as they are: they are rarely shared (tracebacks,
#: long messages), and a bounded pool of short ones is where the savings are.
_LONGEST_SHARED = 200


def parse_spec(raw: Any) -> tuple[AsyncTaskSpec | None, str]:
    """The spec, or None and what is wrong with it (field by field)."""
    try:
        return AsyncTaskSpec.model_validate(raw or {}), ""
    except ValidationError as exc:
        return None, "; ".join(
            f"spec.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()
        )


def pack_request(raw_spec: Any) -> tuple[str | None, int]:
    """``spec.request`` as compact JSON (None if absent or null), and how deep it nests.

    A request nested deeper than the wire allows is not encoded (its task ends in Error,
    RequestTooDeep, and it would overflow the encoder): None, with its depth."""
    request = raw_spec.get("request") if isinstance(raw_spec, dict) else None
    if request is None:
        return None, 0
    depth = json_depth(request)
    if depth > MAX_REQUEST_DEPTH:
        return None, depth
    return json.dumps(request, separators=(",", ":")), depth


class Shared:
    """One copy of each common string, condition list and spec, for every task holding it."""

    def __init__(self, limit: int = 65536) -> None:
        self._limit = limit
        self._pool: dict[Any, Any] = {}
        self._specs: dict[str, tuple[AsyncTaskSpec | None, str]] = {}

    def __len__(self) -> int:
        return len(self._pool) + len(self._specs)

    def text(self, value: str) -> str:
        if len(value) > _LONGEST_SHARED:
            return value
        shared: str = self._share(value, value)
        return shared

    def status(self, status: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``status`` made of shared parts (equal to it)."""
        out: dict[str, Any] = {}
        for key, value in status.items():
            if isinstance(value, str):
                value = self.text(value)
            elif key == "conditions" and isinstance(value, list):
                value = self._conditions(value)
            out[self.text(key)] = value
        return out

    def spec(self, raw: Any) -> tuple[AsyncTaskSpec | None, str]:
        """The spec without its request (see :func:`pack_request`), or None and what is
        wrong with it; parsed once for all the tasks with the same spec."""
        rest = {k: v for k, v in raw.items() if k != "request"} if isinstance(raw, dict) else raw
        key = json.dumps(rest, sort_keys=True, separators=(",", ":"))
        parsed = self._specs.get(key)
        if parsed is None:
            parsed = parse_spec(rest)
            if len(self._specs) >= self._limit // 16:
                self._specs.clear()
            self._specs[key] = parsed
        return parsed

    def _conditions(self, conditions: list[Any]) -> list[Any]:
        try:
            key = ("conditions", tuple(tuple(c.items()) for c in conditions))
            hash(key)
        except (AttributeError, TypeError):  # not a list of flat objects: keep it as it is
            return conditions
        shared: list[Any] | None = self._pool.get(key)
        if shared is None:
            shared = self._share(key, [self.status(c) for c in conditions])
        return shared

    def _share(self, key: Any, value: Any) -> Any:
        found = self._pool.get(key)
        if found is not None:
            return found
        if len(self._pool) >= self._limit:
            self._pool.clear()
        self._pool[key] = value
        return value
