"""RFC 9457 problem details: every error the gateway answers is ``application/problem+json``.

The apiserver's own refusals (schema, CEL rules, the admission policy) pass through
verbatim: ``detail`` is its message and ``causes`` its field errors, so a client sees
exactly what ``kubectl`` would have shown, with the field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from asynctask_gateway.kube import ApiError

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://asynctask.dev/problems/"
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    411: "Length Required",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def kebab(reason: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", reason).lower() or "about-blank"


class Problem(Exception):
    """An error answer; raise it anywhere in a handler."""

    def __init__(
        self,
        status: int,
        reason: str,
        detail: str,
        *,
        causes: Iterable[Mapping[str, Any]] = (),
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status, self.reason, self.detail = status, reason, detail
        self.causes = [dict(c) for c in causes]
        self.headers = dict(headers or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": TYPE_BASE + kebab(self.reason),
            "title": TITLES.get(self.status, "Error"),
            "status": self.status,
            "detail": self.detail,
            "reason": self.reason,
        }
        if instance:
            doc["instance"] = instance
        if self.causes:
            doc["causes"] = self.causes
        return doc

    def response(self, instance: str | None = None) -> web.Response:
        # No "; charset=": RFC 9457's media type is UTF-8 JSON by definition.
        return web.Response(
            status=self.status,
            body=json.dumps(self.body(instance)).encode(),
            headers={"Content-Type": PROBLEM_JSON, **self.headers},
        )


def from_api_error(exc: ApiError) -> Problem:
    """The apiserver's answer as a problem, its message and causes unchanged.

    A 401/403 of the apiserver concerns the gateway's own ServiceAccount, not the caller
    (who was authorized already), so it is reported as a 502 misconfiguration rather than
    blamed on the caller."""
    details = exc.body.get("details") or {}
    causes = [
        {k: c[k] for k in ("field", "reason", "message") if k in c}
        for c in details.get("causes") or []
        if isinstance(c, Mapping)
    ]
    status = exc.status if exc.status in (400, 404, 409, 410, 413, 422, 429) else 502
    if exc.status in (401, 403):
        detail = f"the gateway's own ServiceAccount was refused: {exc.message}"
        return Problem(502, "GatewayForbidden", detail)
    return Problem(status, exc.reason or "ApiError", exc.message or str(exc), causes=causes)


def from_validation_error(exc: ValidationError, prefix: str = "", what: str = "task") -> Problem:
    """A body that did not fit the models: one cause per field, like the apiserver's."""
    causes = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(part) for part in err["loc"])
        field = f"{prefix}{loc}" if loc else prefix.rstrip(".")
        reason = (
            "FieldValueNotSupported" if err["type"] == "extra_forbidden" else "FieldValueInvalid"
        )
        causes.append({"field": field, "reason": reason, "message": err["msg"]})
    fields = ", ".join(c["field"] for c in causes) or "the body"
    return Problem(422, "Invalid", f"the {what} is invalid: {fields}", causes=causes)
