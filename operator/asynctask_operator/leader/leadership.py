"""Leader election on a ``coordination.k8s.io/v1`` Lease: one operator replica works, the
others stand by (``--peering NAME`` names the Lease).

The rules are client-go's (see :mod:`leader.election`, which decides); this module reads and
writes the Lease and keeps the time. A standby tries to take the Lease every
``retry_period_seconds``; the leader renews it every ``renew_interval_seconds``, and one
that could not renew for ``renew_deadline_seconds`` (or finds another holder) stops the
process with SIGTERM: kopf then runs the cleanup and the pod restarts cleanly, as a standby,
rather than run on with two leaders. A graceful stop releases the Lease, so that a standby
takes over at its next try instead of after a whole lease duration.

It shares the process's one apiserver client (:class:`apiserver.apiclient.ApiClient`),
which the operator closes only after the Lease is released: the Lease is read before the
operator starts, renewed while it stops, and released once it has stopped. An apiserver
outage is told as every write tells it (:class:`outage.Outage`: once when it starts, once
when it ends); a leader still gives up at its renew deadline.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import random
import signal
import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from asynctask_operator.apiserver.apiclient import ApiClient, ApiError
from asynctask_operator.errors import Unavailable
from asynctask_operator.leader.election import (
    LeaseRecord,
    Observation,
    Verdict,
    claim,
    released,
    verdict,
)
from asynctask_operator.outage import Outage
from asynctask_operator.settings import LeaseConfig

log = logging.getLogger("asynctask.operator.leadership")

#: The Leases' API.
LEASES = "/apis/coordination.k8s.io/v1"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def identity() -> str:
    """The pod's name (else the host's) and a suffix of this process: a restarted pod is
    another candidate, never mistaken for the leader it was before it crashed."""
    return f"{os.environ.get('POD_NAME') or socket.gethostname()}_{uuid.uuid4().hex[:10]}"


def lease_namespace() -> str:
    """The pod's namespace (downward API), else its ServiceAccount's, else ``default``."""
    if namespace := os.environ.get("POD_NAMESPACE"):
        return namespace
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        return "default"


class Conflict(Exception):
    """Another replica wrote the Lease since it was read (or created it first)."""


class LeaseLock:
    """The three calls on one Lease: read, create, replace (with the version read)."""

    def __init__(self, client: ApiClient, namespace: str, name: str, timeout: float) -> None:
        self.namespace, self.name = namespace, name
        self._client = client
        self._timeout = timeout
        self._path = f"{LEASES}/namespaces/{namespace}/leases"

    async def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            return await self._client.call(
                method, path, body=body, seconds=self._timeout, pool="lease"
            )
        except ApiError as exc:
            if exc.status == 409:
                raise Conflict(exc.reason or exc.message) from exc
            raise

    async def read(self) -> dict[str, Any] | None:
        try:
            return await self._call("GET", f"{self._path}/{self.name}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, spec: dict[str, Any]) -> None:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": spec,
        }
        await self._call("POST", self._path, body)

    async def replace(self, read: dict[str, Any], spec: dict[str, Any]) -> None:
        """Replace the Lease as read (its resourceVersion included): a 409 if it changed."""
        await self._call("PUT", f"{self._path}/{self.name}", {**read, "spec": spec})


class Elector:
    """Acquires, renews and releases the Lease for :attr:`me`."""

    def __init__(
        self, lock: LeaseLock, settings: LeaseConfig, me: str, outage: Outage | None = None
    ) -> None:
        self.lock, self.settings, self.me = lock, settings, me
        self.outage = Outage() if outage is None else outage
        self._observation = Observation()

    async def _try(self, *, leading: bool, failing: str) -> tuple[bool, str] | None:
        """:meth:`_attempt`, or None if it failed: an outage is told by :attr:`outage`,
        another error logged as ``failing``."""
        try:
            result = await self._attempt(leading=leading)
        except Unavailable as exc:
            self.outage.failed(exc)
            return None
        except ApiError as exc:
            self.outage.answered()
            log.warning("%s: %s", failing, exc)
            return None
        self.outage.answered()
        return result

    async def _attempt(self, *, leading: bool) -> tuple[bool, str]:
        """One read (and write, if allowed): whether ``me`` holds the Lease now, and its
        holder as read. A leader never takes the Lease back from another holder."""
        obj = await self.lock.read()
        record = None if obj is None else LeaseRecord.from_object(obj)
        now = asyncio.get_running_loop().time()
        since = now if record is None else self._observation.see(record, now)
        duration = self.settings.duration_seconds
        decided = verdict(record, self.me, seen_since=since, now=now, default_duration=duration)
        holder = "" if record is None else record.holder
        if decided is Verdict.WAIT or (leading and decided is not Verdict.RENEW):
            return False, holder
        spec = claim(record, self.me, dt.datetime.now(dt.UTC), duration)
        try:
            if obj is None:
                await self.lock.create(spec)
            else:
                await self.lock.replace(obj, spec)
        except Conflict:
            return False, holder  # someone else wrote first: read again at the next try
        return True, self.me

    def _retry_wait(self) -> float:
        return self.settings.retry_period_seconds * random.uniform(1.0, 1.2)

    async def acquire(self) -> None:
        """Return once ``me`` holds the Lease; say once per holder who leads meanwhile."""
        announced = ""
        while True:
            tried = await self._try(leading=False, failing="cannot read or take the Lease")
            held, holder = (False, "") if tried is None else tried
            if held:
                return
            if holder and holder != announced:
                log.info("standing by: %s leads", holder)
                announced = holder
            await asyncio.sleep(self._retry_wait())

    async def keep(self) -> str:
        """Renew the Lease until it is lost; returns why."""
        loop = asyncio.get_running_loop()
        renewed = loop.time()
        while True:
            await asyncio.sleep(self.settings.renew_interval_seconds)
            while True:
                tried = await self._try(leading=True, failing="cannot renew the Lease")
                held, holder = (False, self.me) if tried is None else tried
                if held:
                    renewed = loop.time()
                    break
                if holder != self.me:
                    return f"{holder or 'nobody'} holds it now"
                if loop.time() - renewed >= self.settings.renew_deadline_seconds:
                    return f"not renewed for {self.settings.renew_deadline_seconds:g} s"
                await asyncio.sleep(self._retry_wait())

    async def release(self) -> None:
        """Give the Lease up if ``me`` holds it (a graceful stop); failures are logged: the
        Lease then expires after its duration."""
        try:
            obj = await self.lock.read()
            record = None if obj is None else LeaseRecord.from_object(obj)
            if obj is None or record is None or record.holder != self.me:
                return
            await self.lock.replace(obj, released(record, dt.datetime.now(dt.UTC)))
            log.info("released the Lease %s/%s", self.lock.namespace, self.lock.name)
        except (Conflict, Unavailable, ApiError) as exc:
            log.warning("cannot release the Lease (it expires on its own): %s", exc)


class Campaign:
    """The election as a background task: acquire, call ``on_elected``, renew; on loss,
    stop the process (SIGTERM, so that kopf's cleanup runs)."""

    def __init__(self, elector: Elector, on_elected: Callable[[], None]) -> None:
        self.elector = elector
        self._on_elected = on_elected
        self.leading = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="asynctask-lease")
        self._task.add_done_callback(self._ended)

    async def _run(self) -> None:
        await self.elector.acquire()
        self.leading = True
        log.info("leading as %s", self.elector.me)
        self._on_elected()
        why = await self.elector.keep()
        self.leading = False
        lock = self.elector.lock
        log.error("lost the Lease %s/%s (%s): stopping", lock.namespace, lock.name, why)
        os.kill(os.getpid(), signal.SIGTERM)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the leader election failed: stopping", exc_info=task.exception())
            os.kill(os.getpid(), signal.SIGTERM)

    async def _cancel(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def stand_down(self) -> None:
        """A graceful stop begins: a standby stops trying; a leader keeps renewing until
        :meth:`resign`, so that no standby starts while this replica still works."""
        if not self.leading:
            await self._cancel()

    async def resign(self) -> None:
        """Stop renewing and release the Lease if it is held."""
        leading = self.leading
        await self._cancel()
        self.leading = False
        if leading:
            await self.elector.release()
