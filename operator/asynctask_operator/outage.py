"""An apiserver outage, as every write of the operator waits it out: the one path.

While the apiserver cannot be reached, or answers "not now" (:class:`errors.Unavailable`),
a call waits and is made again, unchanged, after a pause that doubles up to
``retry_max_seconds``; its caller sees it succeed (or fail for another reason) once the
apiserver answers. Status writes (their status messages stay unacked meanwhile; one that
went out unanswered is repeated only if a read shows it was not applied), progress
flushes, Events, deletes and reads of a task go this way (:class:`PatientApi`); the
leader's Lease keeps its own deadline, and the watch its own backoff, but both tell their
outages here too.

An outage is told once for the whole process: one WARNING with its cause when it starts,
one INFO with how long it lasted when the apiserver answers again; no ERROR and no
traceback, however many calls wait.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asynctask_operator.errors import Gone, Unavailable
from asynctask_operator.ports import OperatorApi
from asynctask_worker.backoff import Backoff

log = logging.getLogger("asynctask.operator")

T = TypeVar("T")

#: The first pause before a call is made again.
FIRST_RETRY_SECONDS = 0.5


class Outage:
    """Whether the apiserver is unavailable, as the calls of this process find it."""

    def __init__(self, retry_max_seconds: float = 5.0) -> None:
        #: Longest wait between two tries of a call while the apiserver is unavailable.
        self.retry_max_seconds = retry_max_seconds
        self._since: float | None = None

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, exc: Unavailable) -> None:
        """A call found the apiserver unavailable: the outage is told if it is new."""
        if self._since is None:
            self._since = time.monotonic()
            log.warning(
                "the Kubernetes API is unavailable (%s); writes wait and are retried, "
                "watches resume",
                exc,
            )

    def answered(self) -> None:
        """A call got an answer: an ongoing outage is over."""
        if self._since is not None:
            log.info(
                "the Kubernetes API answers again after %.1fs; the writes that waited go on",
                time.monotonic() - self._since,
            )
            self._since = None

    async def wait_out(self, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, made again while it raises :class:`errors.Unavailable`."""
        backoff = Backoff(
            self.retry_max_seconds, first=min(FIRST_RETRY_SECONDS, self.retry_max_seconds)
        )
        while True:
            try:
                result = await call()
            except Unavailable as exc:
                self.failed(exc)
                await asyncio.sleep(backoff.next())
                continue
            except Exception:
                self.answered()  # an answer, if not the one wanted (e.g. Gone)
                raise
            self.answered()
            return result


class PatientApi:
    """The task logic's :class:`ports.OperatorApi`, whose calls wait out an outage; but
    the read of a Secret, which the webhook dispatcher retries on its own terms.

    A status write that got no answer but may have been applied
    (:attr:`errors.Unavailable.maybe_applied`: a timeout, a lost connection, a 504) is
    not simply made again: the object is read first (a GET, not a mutating call), and if
    its status is already the one written, the write is done. Else a task could be
    written twice for one change, over its budget of 3 mutating calls. ``unanswered`` is
    told what each such read found (True: the write was applied)."""

    def __init__(
        self,
        api: OperatorApi,
        outage: Outage,
        unanswered: Callable[[bool], None] = lambda _: None,
    ) -> None:
        self._api = api
        self.outage = outage
        self._unanswered = unanswered

    async def _waiting(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        return await self.outage.wait_out(functools.partial(fn, *args))

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        return await self._waiting(self._api.get, namespace, name)

    async def replace_status(
        self, namespace: str, name: str, uid: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        unsure = False  # a try went out unanswered: it may have been applied

        async def attempt() -> dict[str, Any]:
            nonlocal unsure
            if unsure:
                body = await self._api.get(namespace, name)
                if body["metadata"].get("uid") != uid:
                    raise Gone(f"{namespace}/{name}")
                applied = body.get("status") == status
                self._unanswered(applied)
                if applied:
                    return body
            try:
                return await self._api.replace_status(namespace, name, uid, status)
            except Unavailable as exc:
                unsure = unsure or exc.maybe_applied
                raise

        return await self.outage.wait_out(attempt)

    async def delete(self, namespace: str, name: str, uid: str) -> None:
        await self._waiting(self._api.delete, namespace, name, uid)

    async def create_event(self, namespace: str, body: dict[str, Any]) -> None:
        await self._waiting(self._api.create_event, namespace, body)

    async def read_secret_key(self, namespace: str, name: str, key: str) -> bytes:
        return await self._api.read_secret_key(namespace, name, key)
