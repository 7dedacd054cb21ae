"""A small async Kubernetes client: aiohttp against the apiserver, JSON dicts in and out.

The operator makes every apiserver call with it (one client a process: the watch, status
writes, deletes, Secrets, Events, Deployments, the Lease), and so does the gateway. Why not
kubernetes_asyncio: both need a handful of calls on raw JSON. A generated client
would turn each object into model instances only for the caller to read them back as
dicts, costing memory and CPU on every watch event; and aiohttp is already installed (kopf
needs it). Configuration (kubeconfig with certificates, tokens or exec plugins; the
in-cluster ServiceAccount with its rotating projected token) is loaded by the
``kubernetes`` package the operator already depends on, so nothing is re-implemented there.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Self

import aiohttp
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from asynctask_operator.errors import Unavailable

#: What a call raises when no answer came (refused, reset, timed out, TLS failed).
CONNECTION_ERRORS = (aiohttp.ClientError, OSError, asyncio.TimeoutError)


class ApiError(Exception):
    """A non-2xx answer of the apiserver, with its ``Status`` object when it sent one."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        self.status, self.body = status, dict(body)
        super().__init__(f"{status} {self.reason}: {self.message}")

    @property
    def reason(self) -> str:
        return str(self.body.get("reason") or "")

    @property
    def message(self) -> str:
        return str(self.body.get("message") or "")


def authorization(token: str) -> str:
    """The Authorization header for a token as the kubernetes package stores it: the
    kubeconfig loader prefixes "Bearer ", the in-cluster loader "bearer ", exec plugins
    neither."""
    scheme, _, rest = token.strip().partition(" ")
    return f"Bearer {rest.strip()}" if scheme.lower() == "bearer" and rest else f"Bearer {token}"


def load_configuration() -> k8s_client.Configuration:
    """In a pod: the ServiceAccount (token re-read when it rotates); else KUBECONFIG."""
    cfg = k8s_client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config(client_configuration=cfg, try_refresh_token=True)  # type: ignore[no-untyped-call]
    else:
        # KUBECONFIG read now (the kubernetes package reads it once, when imported).
        k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=os.environ.get("KUBECONFIG") or None,
            client_configuration=cfg,
            persist_config=False,
        )
    return cfg


def ssl_context(cfg: k8s_client.Configuration) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert or None)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    if not cfg.verify_ssl:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


#: The Accept of a call whose caller needs only the object's metadata back (e.g. a status
#: write): the apiserver then encodes neither spec nor status into the answer, and the
#: caller neither decrypts nor parses them (see :func:`kube.replace_status_of`).
METADATA_ONLY = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"

#: Answers that turn a request away before it is handled: it was not applied.
TURNED_AWAY = (429, 503)
#: Failures before the request reached the apiserver: it was not applied.
NOT_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError, ConnectionRefusedError)


def unavailable(exc: BaseException) -> Unavailable | None:
    """``exc`` as :class:`errors.Unavailable` if the same call is worth making again later,
    unchanged: no answer came, or the apiserver answered 429 or 5xx; else None. It says
    whether the request may have been applied all the same (``maybe_applied``): it went
    out and no answer says it was turned away."""
    if isinstance(exc, ApiError):
        if exc.status == 429 or exc.status >= 500:
            maybe = exc.status not in TURNED_AWAY
            return Unavailable(str(exc).rstrip(": "), maybe_applied=maybe)
        return None
    if isinstance(exc, CONNECTION_ERRORS):
        maybe = not isinstance(exc, NOT_SENT)
        return Unavailable(f"{type(exc).__name__}: {exc}".rstrip(": "), maybe_applied=maybe)
    return None


class ApiClient:
    """The connections of one process to the apiserver, in pools of their own: calls
    (``connections`` at most, opened once and kept), watches (``watches`` at most, each
    held for minutes), so that a call never waits behind the long-lived watches, and the
    Lease's calls (:data:`LEASE_CONNECTIONS`), so that a leader's renewal never waits
    behind a backlog of task writes, and the schedules' creates
    (:data:`SCHEDULE_CONNECTIONS`), so that a slot's task is not created late behind them.

    A call's ``seconds`` count from when it has a connection of its pool, not while it
    waits for one: under a backlog (thousands of status writes for 16 connections) a
    write that waited its turn is not abandoned as it goes out, which the apiserver
    would log as a 504 that may or may not have been applied, and made again (a task's
    writes over its budget of 3). A caller that needs a bound on the wait as well has a
    pool of its own."""

    #: Connections of the Lease's pool: its calls are one at a time.
    LEASE_CONNECTIONS = 2
    #: Connections of the schedules' creates (``pool="schedules"``). 200 schedules due in
    #: the same second, their creates in the calls' 16 connections with the tasks' status
    #: writes and the schedules' bookkeeping: each create waited 0.5 s p50 for a connection
    #: while the apiserver served it in 49 ms. With 16 of their own, slot → created p99 was
    #: 1.3 s (200 creates of 60-80 ms, 16 at a time); with 32, 0.6 and 1.1 s in two runs
    #: (bench/README.md, round 6). 1,000 schedules every 10 s (100 creates a second, each
    #: ≈ 0.3-0.5 s as the operator waits for it on a busy machine) were bound by 32: slot →
    #: created p50 5.2 s, a third of the slots missed; with 96, p50 0.19 s and every slot
    #: run (round 8).
    SCHEDULE_CONNECTIONS = 96

    #: Sent as the User-Agent: what the apiserver's audit log names the caller.
    user_agent = "asynctask"

    def __init__(
        self, cfg: k8s_client.Configuration, connections: int = 64, watches: int = 64
    ) -> None:
        self.cfg = cfg
        self.host = str(cfg.host).rstrip("/")
        self._ssl = ssl_context(cfg) if self.host.startswith("https") else None
        self._limits = {
            "calls": connections,
            "watches": watches,
            "lease": self.LEASE_CONNECTIONS,
            "schedules": self.SCHEDULE_CONNECTIONS,
        }
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._slots: dict[str, asyncio.Semaphore] = {}  # a pool's free connections

    @classmethod
    def from_environment(cls) -> Self:
        return cls(load_configuration())

    def _headers(
        self, content_type: str | None = None, accept: str = "application/json"
    ) -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": self.user_agent}
        token = self.cfg.get_api_key_with_prefix("BearerToken")
        if token:
            headers["Authorization"] = authorization(token)
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _session(self, pool: str) -> aiohttp.ClientSession:
        session = self._sessions.get(pool)
        if session is None:
            connector = aiohttp.TCPConnector(ssl=self._ssl or False, limit=self._limits[pool])
            # The apiserver sets no cookies; aiohttp's default jar filters them per request
            # all the same (about 1% of the operator's CPU in a burst's profile).
            session = self._sessions[pool] = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar()
            )
        return session

    def _slot(self, pool: str) -> asyncio.Semaphore:
        slot = self._slots.get(pool)
        if slot is None:
            slot = self._slots[pool] = asyncio.Semaphore(self._limits[pool])
        return slot

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        seconds: float = 30,
        pool: str = "calls",
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """One call on a connection of ``pool`` (``calls``, ``lease``, ``schedules``),
        which it waits for first; ``seconds`` bound the call from then on; ``accept``: the
        answer's media type (:data:`METADATA_ONLY`: the object's metadata only). Raises
        :class:`ApiError` on a non-2xx answer, and what aiohttp raises
        (:data:`CONNECTION_ERRORS`) when none came."""
        data = None if body is None else json.dumps(body).encode()
        session = self._session(pool)
        async with (
            self._slot(pool),
            session.request(
                method,
                self.host + path,
                data=data,
                params=params,
                headers=self._headers(content_type if data is not None else None, accept),
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as resp,
        ):
            raw = await resp.read()
            try:
                answer = json.loads(raw) if raw else {}
            except ValueError:
                answer = {"message": raw.decode(errors="replace")[:1024]}
            if resp.status >= 300:
                raise ApiError(resp.status, answer if isinstance(answer, dict) else {})
            return answer if isinstance(answer, dict) else {}

    async def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        seconds: float = 30,
        pool: str = "calls",
        accept: str = "application/json",
    ) -> dict[str, Any]:
        """:meth:`request`, with an outage raised as :class:`errors.Unavailable` (see
        :func:`unavailable`); other answers raise :class:`ApiError`."""
        try:
            return await self.request(
                method,
                path,
                body=body,
                params=params,
                content_type=content_type,
                seconds=seconds,
                pool=pool,
                accept=accept,
            )
        except (ApiError, *CONNECTION_ERRORS) as exc:
            outage = unavailable(exc)
            if outage is None:
                raise
            raise outage from exc

    async def watch(
        self,
        path: str,
        params: Mapping[str, str],
        read_timeout: float,
        on_open: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[dict[str, Any]]:
        """The events of one watch request, as the apiserver sends them (one JSON per line);
        ``on_open`` is called once the apiserver accepted the request."""
        query = dict(params, watch="1")
        async with self._session("watches").get(
            self.host + path,
            params=query,
            headers=self._headers(),
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=read_timeout),
        ) as resp:
            if resp.status >= 300:
                raise ApiError(resp.status, await _json_or_empty(resp))
            on_open()
            # Lines can be far longer than aiohttp's readline limit (a task's result is up
            # to a few hundred KiB), so chunks are split here.
            buffer = b""
            async for chunk in resp.content.iter_any():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        event = json.loads(line)
                        if isinstance(event, dict):
                            yield event


async def _json_or_empty(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        answer = await resp.json(content_type=None)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}
