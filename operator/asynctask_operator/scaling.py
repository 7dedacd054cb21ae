"""Built-in autoscaling of worker Deployments on the depth of their queues (docs/autoscaling.md).

One asyncio task lists the Deployments labelled ``asynctask.dev/autoscale: "true"`` and, every
interval, gives each ``ceil(depth / target)`` replicas clamped to [min, max]: up at once, down
only to the highest count wanted over the scale-down window. Depth = ready (passive
``queue.declare``: exact, immediate) + unacked (management API: lags up to 5 s), or ready only.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import fnmatch
import logging
import math
import re
import sys
import time
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp
import pika.exceptions
import urllib3.exceptions
import yarl
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from asynctask_operator.settings import OperatorSettings
from asynctask_worker import _amqp, topology

log = logging.getLogger("asynctask.operator.scaling")

LABEL = "asynctask.dev/autoscale"
QUEUES = "asynctask.dev/queues"
MIN_REPLICAS = "asynctask.dev/min-replicas"
MAX_REPLICAS = "asynctask.dev/max-replicas"
TARGET = "asynctask.dev/target-messages-per-replica"
_QUEUE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")  # spec.queue, as in the CRD
_NAMESPACE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_K8S_ERRORS = (ApiException, OSError, urllib3.exceptions.HTTPError)
Found = tuple[str, str, int, dict[str, str]]  # a Deployment: namespace, name, replicas, notes


class BadAnnotations(ValueError):
    """A Deployment's autoscaling annotations cannot be used: it is left alone."""


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
class Policy:
    queues: tuple[str, ...]
    min_replicas: int = 0
    max_replicas: int = 10
    target: int = 1  # messages per replica

    def desired(self, depth: int) -> int:
        wanted = math.ceil(max(depth, 0) / self.target)
        return max(self.min_replicas, min(self.max_replicas, wanted))


def _count(annotations: Mapping[str, str], key: str, default: int, minimum: int) -> int:
    raw = annotations.get(key, str(default))
    if not re.fullmatch(r"[0-9]{1,9}", str(raw).strip()) or int(raw) < minimum:
        raise BadAnnotations(f"{key}={raw!r} is not a whole number of at least {minimum}")
    return int(raw)


def parse_policy(annotations: Mapping[str, str] | None) -> Policy:
    """The policy a Deployment's annotations describe; BadAnnotations says what is wrong."""
    annotations = annotations or {}
    raw = annotations.get(QUEUES) or ""
    queues = tuple(dict.fromkeys(q.strip() for q in raw.split(",") if q.strip()))
    if not queues:
        raise BadAnnotations(f"{QUEUES} is missing or empty: it must name the spec.queue "
                             "values the workers serve, comma-separated")
    invalid = [q for q in queues if len(q) > 63 or not _QUEUE_NAME.fullmatch(q)]
    if invalid:
        raise BadAnnotations(f"{QUEUES}: not a valid spec.queue name: {', '.join(invalid)}")
    low, high = _count(annotations, MIN_REPLICAS, 0, 0), _count(annotations, MAX_REPLICAS, 10, 1)
    if low > high:
        raise BadAnnotations(f"{MIN_REPLICAS}={low} is above {MAX_REPLICAS}={high}")
    return Policy(queues, low, high, _count(annotations, TARGET, 1, 1))


class Stabiliser:
    """Up at once; down only to the highest count wanted over the window. The history
    starts with the count found: a new operator waits a whole window before scaling down."""

    def __init__(self, window: float, now: float, current: int) -> None:
        self.window = window
        self._wanted: deque[tuple[float, int]] = deque([(now, current)])

    def decide(self, now: float, desired: int, current: int, *,
               exact: bool = True) -> tuple[int, str] | None:
        """The count to set and why, or None. ``exact=False`` (in-flight unknown): up only."""
        self._wanted.append((now, desired if exact else max(desired, current)))
        while self._wanted[0][0] < now - self.window:
            self._wanted.popleft()
        if desired > current:
            return desired, "scale up at once"
        ceiling = max(n for _, n in self._wanted)
        if ceiling < current:
            return ceiling, f"the highest count wanted over the last {self.window:g}s"
        return None


def operator_namespaces(argv: Sequence[str]) -> list[str]:
    """The ``--namespace``/``-n`` patterns the operator runs with (none: cluster-wide)."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--namespace", "-n", action="append", default=[])
    return list(parser.parse_known_args(list(argv))[0].namespace)


def in_scope(namespace: str, patterns: Sequence[str]) -> bool:
    """kopf's namespace patterns: each a comma-separated list of globs, ``!glob`` excludes."""
    for pattern in patterns:
        globs = [g.strip() for g in pattern.split(",")]
        include = [g for g in globs if not g.startswith("!")] or ["*"]
        if any(fnmatch.fnmatchcase(namespace, g) for g in include) and not any(
                fnmatch.fnmatchcase(namespace, g[1:]) for g in globs if g.startswith("!")):
            return True
    return not patterns


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

    def __init__(self, config: OperatorSettings, problems: Problems) -> None:
        # Problems reports an outage here (once), so the link's own outage log is not used.
        self._link = _amqp.Link(_amqp.parameters(config.amqp_url, attempts=1, timeout=5),
                                name="autoscaler", log=log)
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
            self.problems.report("management", "cannot read in-flight counts from the "
                                 f"management API ({_error(exc)}): scaling up only")
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
class Pool:
    namespace: str
    name: str
    policy: Policy
    replicas: int  # spec.replicas as last listed or set
    stabiliser: Stabiliser
    holding: bool = False  # a scale-down is waiting (logged once)


class Autoscaler:
    def __init__(self, config: OperatorSettings, namespaces: Sequence[str] | None = None) -> None:
        self.config = config
        self.namespaces = list(operator_namespaces(sys.argv[1:]) if namespaces is None
                               else namespaces)
        self.pools: dict[str, Pool] = {}  # by namespace/name
        self.problems = Problems()
        self.reader = DepthReader(config, self.problems)
        self._apps: Any = client.AppsV1Api()  # after the operator loaded its kubeconfig
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Autoscaler:
        if not self.reader.managed:
            log.warning("ASYNCTASK_MANAGEMENT_URL is not set: queue depth counts ready "
                        "messages only, so tasks in flight do not keep their workers")
        log.info("autoscaling Deployments labelled %s=true in %s", LABEL,
                 ", ".join(self.namespaces) or "all namespaces")
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
            await asyncio.sleep(max(0.05, started + self.config.scale_interval_seconds
                                    - time.monotonic()))

    async def list_deployments(self) -> list[Found] | None:
        items, literal = [], all(_NAMESPACE.fullmatch(p) for p in self.namespaces)
        try:  # one LIST; one per namespace if the operator names plain namespaces
            for namespace in self.namespaces if self.namespaces and literal else [None]:
                call, args = ((self._apps.list_namespaced_deployment, [namespace]) if namespace
                              else (self._apps.list_deployment_for_all_namespaces, []))
                items += (await asyncio.to_thread(call, *args, label_selector=f"{LABEL}=true",
                                                  _request_timeout=30)).items
        except _K8S_ERRORS as exc:
            self.problems.report("list", f"cannot list worker Deployments ({_error(exc)}); "
                                 "keeping the pools found before")
            return None
        self.problems.clear("list", "listing worker Deployments again")
        return [(d.metadata.namespace, d.metadata.name,
                 1 if d.spec.replicas is None else int(d.spec.replicas),
                 dict(d.metadata.annotations or {}))
                for d in items if d.metadata.deletion_timestamp is None]

    def discover(self, found: Iterable[Found], now: float) -> None:
        """Start, update or stop autoscaling pools, as the listed Deployments say."""
        listed = set()
        for namespace, name, replicas, notes in found:
            key = f"{namespace}/{name}"
            if not in_scope(namespace, self.namespaces):
                continue
            listed.add(key)
            try:
                policy = parse_policy(notes)
            except BadAnnotations as exc:
                self.problems.report(f"bad:{key}", f"not autoscaling {key}: {exc}")
                self.pools.pop(key, None)
                continue
            self.problems.clear(f"bad:{key}")
            pool = self.pools.get(key)
            if pool is None or pool.policy != policy:
                log.info("autoscaling %s on %s: %d to %d replicas, %d message(s) per replica",
                         key, ",".join(policy.queues), policy.min_replicas,
                         policy.max_replicas, policy.target)
            if pool is None:
                self.pools[key] = Pool(namespace, name, policy, replicas, Stabiliser(
                    self.config.scale_down_window_seconds, now, replicas))
            else:
                pool.policy, pool.replicas = policy, replicas
        for key in set(self.pools) - listed:
            log.info("no longer autoscaling %s (deleted, or no longer labelled)", key)
            del self.pools[key]
        for key in [k for k in self.problems.current if ":" in k]:
            if key.partition(":")[2] not in listed:  # a Deployment's problem: it is gone
                self.problems.clear(key)

    async def tick(self, now: float) -> None:
        if queues := sorted({q for pool in self.pools.values() for q in pool.policy.queues}):
            depths = await self.reader.read(queues)
            for key, pool in list(self.pools.items()):
                await self.decide(key, pool, depths, now)

    async def decide(self, key: str, pool: Pool, depths: Mapping[str, Depth | None],
                     now: float) -> None:
        known = {q: d for q in pool.policy.queues if (d := depths.get(q)) is not None}
        if len(known) < len(pool.policy.queues):
            return  # depth unknown (the reader said why): leave the pool as it is
        depth = sum(d.ready + (d.unacked or 0) for d in known.values())
        exact = not self.reader.managed or all(d.unacked is not None for d in known.values())
        desired = pool.policy.desired(depth)
        decision = pool.stabiliser.decide(now, desired, pool.replicas, exact=exact)
        detail = "; ".join(f"{q}: {d.ready} ready + {'?' if d.unacked is None else d.unacked} "
                           "unacked" for q, d in known.items())
        if decision is None:
            if desired < pool.replicas and not pool.holding:
                log.info("%s: depth %d (%s) wants %d of its %d replicas; %s", key, depth, detail,
                         desired, pool.replicas, "holding until the scale-down window has "
                         "passed" if exact else "holding: in-flight count unknown")
            pool.holding = desired < pool.replicas
            return
        replicas, reason = decision
        pool.holding = False
        log.info("scaling %s from %d to %d replicas: depth %d (%s), %d per replica, min %d, "
                 "max %d; %s", key, pool.replicas, replicas, depth, detail, pool.policy.target,
                 pool.policy.min_replicas, pool.policy.max_replicas, reason)
        if await self.scale(key, pool, replicas):
            pool.replicas = replicas

    async def scale(self, key: str, pool: Pool, replicas: int) -> bool:
        try:  # the scale subresource: replicas only
            await asyncio.to_thread(self._apps.patch_namespaced_deployment_scale, pool.name,
                                    pool.namespace, {"spec": {"replicas": replicas}},
                                    _request_timeout=10)
        except _K8S_ERRORS as exc:
            if getattr(exc, "status", None) == 404:
                log.info("%s is gone; no longer autoscaling it", key)
                self.pools.pop(key, None)
            else:
                self.problems.report(f"scale:{key}", f"cannot scale {key} to {replicas} "
                                     f"({_error(exc)}); trying again")
            return False
        self.problems.clear(f"scale:{key}")
        return True
