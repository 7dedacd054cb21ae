"""One HTTP connection pool (httpx), with the answers of both servers turned into errors alike.

The apiserver refuses with a Kubernetes ``Status``; the gateway with an RFC 9457 problem.
Both become :class:`ApiError`; a server that cannot be reached becomes
:class:`ConnectionFailed`, so a script (or the CLI's exit code) tells "refused" from "down".
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import httpx

from asynctask_client.errors import ApiError, ConnectionFailed

USER_AGENT = "asynctask-client"


class Http:
    """Calls to one server; ``token`` is asked for on each call (tokens rotate)."""

    def __init__(
        self,
        base: str,
        *,
        token: Callable[[], str | None],
        verify: ssl.SSLContext | bool = True,
        seconds: float = 30,
    ) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.client = httpx.Client(
            verify=verify, timeout=httpx.Timeout(seconds), headers={"User-Agent": USER_AGENT}
        )

    def headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", **(extra or {})}
        token = self.token()
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        seconds: float | None = None,
        content_type: str = "application/json",
        stream: Iterator[bytes] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """One call: ``(status, JSON body)``; raises on a refusal or a failed connection.
        ``stream``: a raw body sent as it is read (``headers`` give its length and type)."""
        all_headers = self.headers(headers)
        content: bytes | Iterator[bytes] | None = stream
        if body is not None:
            content = json.dumps(body).encode()
            all_headers["Content-Type"] = content_type
        timeout = httpx.Timeout(seconds) if seconds is not None else httpx.USE_CLIENT_DEFAULT
        try:
            resp = self.client.request(
                method,
                self.base + path,
                content=content,
                params=params,
                headers=all_headers,
                timeout=timeout,
            )
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"cannot reach {self.base}: {exc}") from exc
        answer = _json(resp.content)
        if resp.status_code >= 300:
            raise refusal(resp.status_code, resp.headers.get("content-type", ""), answer)
        return resp.status_code, answer

    @contextmanager
    def stream(
        self,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        read_seconds: float,
    ) -> Iterator[httpx.Response]:
        """A streamed GET; a read that waits more than ``read_seconds`` raises
        ``httpx.ReadTimeout`` (the caller resumes or gives up)."""
        timeout = httpx.Timeout(30, read=read_seconds)
        try:
            with self.client.stream(
                "GET",
                self.base + path,
                params=params,
                headers=self.headers(headers),
                timeout=timeout,
            ) as resp:
                if resp.status_code >= 300:
                    resp.read()
                    raise refusal(
                        resp.status_code, resp.headers.get("content-type", ""), _json(resp.content)
                    )
                yield resp
        except httpx.ConnectError as exc:
            raise ConnectionFailed(f"cannot reach {self.base}: {exc}") from exc

    def close(self) -> None:
        self.client.close()


def _json(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw) if raw else {}
    except ValueError:
        return {"message": raw.decode(errors="replace")[:1024]}
    return doc if isinstance(doc, dict) else {}


def refusal(status: int, content_type: str, body: Mapping[str, Any]) -> ApiError:
    if content_type.startswith("application/problem+json"):
        return ApiError.from_problem(status, body)
    return ApiError.from_kubernetes(status, body)
