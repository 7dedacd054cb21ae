"""Which replicas a worker Deployment should have: its annotations, and the decision, pure.

``asynctask.dev/queues`` names the queues it serves; ``min-replicas``, ``max-replicas`` and
``target-messages-per-replica`` bound and size it. :class:`Stabiliser` scales up at once and
down only to the highest count wanted over a window, so a short lull costs no restarts.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

QUEUES = "asynctask.dev/queues"
MIN_REPLICAS = "asynctask.dev/min-replicas"
MAX_REPLICAS = "asynctask.dev/max-replicas"
TARGET = "asynctask.dev/target-messages-per-replica"
_QUEUE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")  # spec.queue, as in the CRD


class BadAnnotations(ValueError):
    """A Deployment's autoscaling annotations cannot be used: it is left alone."""


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
        raise BadAnnotations(
            f"{QUEUES} is missing or empty: it must name the spec.queue "
            "values the workers serve, comma-separated"
        )
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

    def decide(
        self, now: float, desired: int, current: int, *, exact: bool = True
    ) -> tuple[int, str] | None:
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


def in_scope(namespace: str, patterns: Sequence[str]) -> bool:
    """kopf's namespace patterns: each a comma-separated list of globs, ``!glob`` excludes."""
    for pattern in patterns:
        globs = [g.strip() for g in pattern.split(",")]
        include = [g for g in globs if not g.startswith("!")] or ["*"]
        if any(fnmatch.fnmatchcase(namespace, g) for g in include) and not any(
            fnmatch.fnmatchcase(namespace, g[1:]) for g in globs if g.startswith("!")
        ):
            return True
    return not patterns
