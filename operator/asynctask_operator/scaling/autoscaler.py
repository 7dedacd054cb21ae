"""Built-in autoscaling of worker Deployments on the depth of their queues (docs/autoscaling.md).

One asyncio task lists the Deployments labelled ``asynctask.dev/autoscale: "true"`` and, every
interval, gives each ``ceil(depth / target)`` replicas clamped to [min, max]: up at once, down
only to the highest count wanted over the scale-down window (:mod:`policy`).
Depth = ready (passive ``queue.declare``: exact, immediate) + unacked (management API: lags
up to 5 s), or ready only.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

import aiohttp
import pika.exceptions
import yarl

from asynctask_operator.apiserver.apiclient import ApiError
from asynctask_operator.apiserver.kube import Deployment
from asynctask_operator.errors import Unavailable
from asynctask_operator.outage import Outage
from asynctask_operator.scaling.policy import (
    BadAnnotations,
    Policy,
    Stabiliser,
    in_scope,
    parse_policy,
)
from asynctask_operator.settings import ScalingConfig
from asynctask_worker import amqp as _amqp
from asynctask_worker import topology

log = logging.getLogger("asynctask.operator.scaling")

LABEL = "asynctask.dev/autoscale"
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")


class DeploymentApi(Protocol):
    """The Deployment calls of :class:`apiserver.kube.Kube` (both raise
    :class:`errors.Unavailable` or :class:`apiserver.apiclient.ApiError`)."""

    async def list_deployments(
        self, namespaces: Sequence[str | None], label_selector: str
    ) -> list[Deployment]: ...

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None: ...


@dataclass(frozen=True)
class DepthSource:
    """What :class:`DepthReader` reads: the AMQP URL and the management API's settings."""

    amqp_url: str
    management_url: str | None = None
    management_timeout_seconds: float = 2.0


class Problems:
    """Logs each problem once, when it starts or changes (and, if asked, when it is over)."""

    def __init__(self) -> None:
        self.current: dict[str, str] = {}

    def report(self, key: str, problem: str) -> None:
        if self.current.get(key) != problem:
            log.warning("%s", problem)
        self.current[key] = problem

    def clear(self, key: str, recovered: str | None = None) -> None:
        if self.current.pop(key, None) is not None and recovered:
            log.info("%s", recovered)


def _error(exc: BaseException) -> str:
    status = getattr(exc, "status", None)
    return f"{status} {getattr(exc, 'reason', '')}" if status else f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Depth:
    ready: int
    unacked: int | None = None  # None: not known (no management API, or it failed)


def merge(live: int | None, managed: tuple[int, int] | None) -> Depth | None:
    if live is not None:
        return Depth(live, None if managed is None else managed[1])
    return None if managed is None else Depth(*managed)


class DepthReader:
    """Ready: passive ``queue.declare`` (own connection and thread). Unacked: management API."""

    def __init__(self, config: DepthSource, problems: Problems) -> None:
        # Problems reports an outage here (once), so the link's own outage log is not used.
        self._link = _amqp.Link(
            _amqp.parameters(config.amqp_url, attempts=1, timeout=5), name="autoscaler", log=log
        )
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="asynctask-scaling")
        self._channel: Any = None
        self.problems = problems
        url = yarl.URL(config.management_url or "http://unset")
        self.managed = bool(config.management_url)
        auth = base64.b64encode(f"{url.user or ''}:{url.password or ''}".encode()).decode()
        self._headers = {"Authorization": f"Basic {auth}"} if url.user else {}
        vhost = quote(self._link.params.virtual_host, safe="")
        self._base = f"{str(url.with_user(None)).rstrip('/')}/api/queues/{vhost}"
        self._timeout = aiohttp.ClientTimeout(total=config.management_timeout_seconds)
        self._session: aiohttp.ClientSession | None = None

    async def read(self, queues: Sequence[str]) -> dict[str, Depth | None]:
        live = asyncio.get_running_loop().run_in_executor(self._pool, self._ready, list(queues))
        ready, managed = await asyncio.gather(live, self._management(queues))
        return {q: merge(ready.get(q), managed.get(q)) for q in queues}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await asyncio.get_running_loop().run_in_executor(self._pool, self._close)
        self._pool.shutdown(wait=False)

    def _ready(self, queues: list[str]) -> dict[str, int | None]:
        counts: dict[str, int | None] = dict.fromkeys(queues)
        for _ in range(2):  # a connection left idle past its heartbeat gets one fresh try
            try:
                counts.update((queue, self._declare(queue)) for queue in queues)
                self.problems.clear("amqp", "reading queue depths over AMQP again")
                return counts
            except _amqp.BROKER_ERRORS as exc:
                self._close()
                error = _error(exc)
        self.problems.report("amqp", f"cannot read queue depths over AMQP ({error})")
        return counts

    def _declare(self, queue: str) -> int:
        if not self._link.is_open:
            self._channel = None
        conn = self._link.open()
        if self._channel is None or not self._channel.is_open:
            self._channel = conn.channel()
        try:
            ok = self._channel.queue_declare(topology.task_queue_name(queue), passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            self._channel = None
            if exc.reply_code != 404:
                raise
            # Not declared yet: nothing was ever queued there. Declare it as workers and the
            # operator do (same arguments), so later reads find it instead of closing the
            # channel (and pika logging that) every interval.
            self._channel = conn.channel()
            topology.declare_task_queue(self._channel, queue)
            return 0
        return int(ok.method.message_count)

    def _close(self) -> None:
        self._channel = None
        self._link.close()

    async def _management(self, queues: Sequence[str]) -> dict[str, tuple[int, int]]:
        if not self.managed:
            return {}
        if self._session is None:
            self._session = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        try:
            results = await asyncio.gather(*(self._one(self._session, q) for q in queues))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            self.problems.report(
                "management",
                "cannot read in-flight counts from the "
                f"management API ({_error(exc)}): scaling up only",
            )
            return {}
        self.problems.clear("management", "reading in-flight counts from the management API")
        return dict(zip(queues, results, strict=True))

    async def _one(self, session: aiohttp.ClientSession, queue: str) -> tuple[int, int]:
        name = quote(topology.task_queue_name(queue), safe="")
        async with session.get(yarl.URL(f"{self._base}/{name}", encoded=True)) as resp:
            if resp.status == 404:
                return 0, 0  # not declared yet
            resp.raise_for_status()
            body = await resp.json()  # a new queue has no statistics yet: no fields
        return int(body.get("messages_ready") or 0), int(body.get("messages_unacknowledged") or 0)


@dataclass
class ScaledDeployment:
    """A worker Deployment under autoscaling: its policy and what was last decided."""

    namespace: str
    name: str
    policy: Policy
    replicas: int  # spec.replicas as last listed or set
    stabiliser: Stabiliser
    holding: bool = False  # a scale-down is waiting (logged once)


class Autoscaler:
    def __init__(
        self,
        config: ScalingConfig,
        amqp_url: str,
        api: DeploymentApi,
        namespaces: Sequence[str] = (),
        outage: Outage | None = None,
    ) -> None:
        self.config = config
        self.api = api
        self.outage = Outage() if outage is None else outage  # told once, as every call's
        self.namespaces = list(namespaces)  # kopf's patterns; none: cluster-wide
        self.deployments: dict[str, ScaledDeployment] = {}  # by namespace/name
        self.problems = Problems()
        self.reader = DepthReader(
            DepthSource(amqp_url, config.management_url, config.management_timeout_seconds),
            self.problems,
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Autoscaler:
        if not self.reader.managed:
            log.warning(
                "ASYNCTASK_MANAGEMENT_URL is not set: queue depth counts ready "
                "messages only, so tasks in flight do not keep their workers"
            )
        log.info(
            "autoscaling Deployments labelled %s=true in %s",
            LABEL,
            ", ".join(self.namespaces) or "all namespaces",
        )
        self._task = asyncio.create_task(self.run(), name="asynctask-autoscaler")
        return self

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        await self.reader.close()

    async def run(self) -> None:
        next_listing = 0.0
        while True:
            started = time.monotonic()
            try:
                if started >= next_listing:
                    next_listing = started + self.config.scale_discovery_interval_seconds
                    found = await self.list_deployments()
                    if found is not None:
                        self.discover(found, started)
                await self.tick(started)
            except Exception:  # one bad round must not end autoscaling
                log.exception("autoscaling round failed; trying again")
            await asyncio.sleep(
                max(0.05, started + self.config.scale_interval_seconds - time.monotonic())
            )

    async def list_deployments(self) -> list[Deployment] | None:
        """One LIST; one per namespace if the operator names plain namespaces."""
        literal = all(_NAMESPACE.fullmatch(p) for p in self.namespaces)
        namespaces: list[str | None] = (
            list(self.namespaces) if self.namespaces and literal else [None]
        )
        try:
            found = await self.api.list_deployments(namespaces, f"{LABEL}=true")
        except Unavailable as exc:
            self.outage.failed(exc)
            return None
        except ApiError as exc:
            self.problems.report(
                "list",
                f"cannot list worker Deployments ({_error(exc)}); "
                "keeping the Deployments found before",
            )
            return None
        self.outage.answered()
        self.problems.clear("list", "listing worker Deployments again")
        return found

    def discover(self, found: Iterable[Deployment], now: float) -> None:
        """Start, update or stop autoscaling Deployments, as the listing says."""
        listed = set()
        for deployment in found:
            namespace, name, replicas = deployment.namespace, deployment.name, deployment.replicas
            key = f"{namespace}/{name}"
            if not in_scope(namespace, self.namespaces):
                continue
            listed.add(key)
            try:
                policy = parse_policy(deployment.annotations)
            except BadAnnotations as exc:
                self.problems.report(f"bad:{key}", f"not autoscaling {key}: {exc}")
                self.deployments.pop(key, None)
                continue
            self.problems.clear(f"bad:{key}")
            scaled = self.deployments.get(key)
            if scaled is None or scaled.policy != policy:
                log.info(
                    "autoscaling %s on %s: %d to %d replicas, %d message(s) per replica",
                    key,
                    ",".join(policy.queues),
                    policy.min_replicas,
                    policy.max_replicas,
                    policy.target,
                )
            if scaled is None:
                self.deployments[key] = ScaledDeployment(
                    namespace,
                    name,
                    policy,
                    replicas,
                    Stabiliser(self.config.scale_down_window_seconds, now, replicas),
                )
            else:
                scaled.policy, scaled.replicas = policy, replicas
        for key in set(self.deployments) - listed:
            log.info("no longer autoscaling %s (deleted, or no longer labelled)", key)
            del self.deployments[key]
        for key in [k for k in self.problems.current if ":" in k]:
            if key.partition(":")[2] not in listed:  # a Deployment's problem: it is gone
                self.problems.clear(key)

    async def tick(self, now: float) -> None:
        if queues := sorted(
            {q for scaled in self.deployments.values() for q in scaled.policy.queues}
        ):
            depths = await self.reader.read(queues)
            for key, scaled in list(self.deployments.items()):
                await self.decide(key, scaled, depths, now)

    async def decide(
        self, key: str, scaled: ScaledDeployment, depths: Mapping[str, Depth | None], now: float
    ) -> None:
        known = {q: d for q in scaled.policy.queues if (d := depths.get(q)) is not None}
        if len(known) < len(scaled.policy.queues):
            return  # depth unknown (the reader said why): leave the Deployment as it is
        depth = sum(d.ready + (d.unacked or 0) for d in known.values())
        exact = not self.reader.managed or all(d.unacked is not None for d in known.values())
        desired = scaled.policy.desired(depth)
        decision = scaled.stabiliser.decide(now, desired, scaled.replicas, exact=exact)
        detail = "; ".join(
            f"{q}: {d.ready} ready + {'?' if d.unacked is None else d.unacked} unacked"
            for q, d in known.items()
        )
        if decision is None:
            if desired < scaled.replicas and not scaled.holding:
                log.info(
                    "%s: depth %d (%s) wants %d of its %d replicas; %s",
                    key,
                    depth,
                    detail,
                    desired,
                    scaled.replicas,
                    "holding until the scale-down window has passed"
                    if exact
                    else "holding: in-flight count unknown",
                )
            scaled.holding = desired < scaled.replicas
            return
        replicas, reason = decision
        scaled.holding = False
        log.info(
            "scaling %s from %d to %d replicas: depth %d (%s), %d per replica, min %d, max %d; %s",
            key,
            scaled.replicas,
            replicas,
            depth,
            detail,
            scaled.policy.target,
            scaled.policy.min_replicas,
            scaled.policy.max_replicas,
            reason,
        )
        if await self.scale(key, scaled, replicas):
            scaled.replicas = replicas

    async def scale(self, key: str, scaled: ScaledDeployment, replicas: int) -> bool:
        try:
            await self.api.scale_deployment(scaled.namespace, scaled.name, replicas)
        except Unavailable as exc:
            self.outage.failed(exc)
            return False
        except ApiError as exc:
            if getattr(exc, "status", None) == 404:
                log.info("%s is gone; no longer autoscaling it", key)
                self.deployments.pop(key, None)
            else:
                self.problems.report(
                    f"scale:{key}",
                    f"cannot scale {key} to {replicas} ({_error(exc)}); trying again",
                )
            return False
        self.problems.clear(f"scale:{key}")
        return True
