"""An AsyncQueue's spec as the operator reads it, and the reasons a task is held (pure).

The CRD's schema refuses bad policy first (a cap, rate, burst, ageing or weight below its
minimum); a spec this model still refuses is treated as no limit at all but pause, so
that nothing is published against a policy nobody can read, and the queue's Ready
condition says why.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class Reason(StrEnum):
    """Why a held task waits (its ``status.reason``)."""

    PAUSED = "Paused"
    CONCURRENCY_LIMIT = "ConcurrencyLimit"
    RATE_LIMITED = "RateLimited"
    WAITING_FOR_TURN = "WaitingForTurn"


HELD_REASONS = frozenset(r.value for r in Reason)


class RateLimit(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    per_second: Annotated[float, Field(alias="perSecond", gt=0, le=100000)]
    burst: Annotated[int, Field(ge=1, le=100000)] = 1


class PriorityPolicy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    aging_seconds: Annotated[int | None, Field(alias="agingSeconds", ge=1, le=86400)] = None


class Fairness(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    weights: dict[str, Annotated[int, Field(ge=1, le=1000)]] = Field(default_factory=dict)


class QueuePolicy(BaseModel):
    """``spec`` of an AsyncQueue."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    paused: bool = False
    max_in_flight: Annotated[int | None, Field(alias="maxInFlight", ge=1, le=1000000)] = None
    rate_limit: RateLimit | None = Field(None, alias="rateLimit")
    priority: PriorityPolicy = Field(default_factory=PriorityPolicy)
    fairness: Fairness = Field(default_factory=Fairness)

    @property
    def aging_seconds(self) -> int | None:
        return self.priority.aging_seconds

    def weight(self, namespace: str) -> int:
        return self.fairness.weights.get(namespace, 1)

    def describe(self) -> str:
        """The policy in a few words, for messages and Events."""
        parts = ["paused"] if self.paused else []
        if self.max_in_flight is not None:
            parts.append(f"at most {self.max_in_flight} in flight")
        if self.rate_limit is not None:
            parts.append(f"{self.rate_limit.per_second:g}/s (burst {self.rate_limit.burst})")
        return ", ".join(parts) or "no limits"


def explain(reason: Reason, queue: str, policy: QueuePolicy) -> str:
    """The message of a task held for ``reason`` (``status.message``)."""
    if reason is Reason.PAUSED:
        return f"held: queue {queue} is paused (AsyncQueue {queue}, spec.paused)"
    if reason is Reason.CONCURRENCY_LIMIT:
        return (
            f"held: queue {queue} has {policy.max_in_flight} tasks in flight, its "
            "spec.maxInFlight; published when one finishes"
        )
    if reason is Reason.RATE_LIMITED:
        rate = policy.rate_limit
        pace = f"{rate.per_second:g}/s, burst {rate.burst}" if rate else "its rate"
        return f"held: queue {queue} publishes at most {pace} (spec.rateLimit)"
    return (
        f"held: waiting for its turn on queue {queue}, behind tasks of higher priority "
        "or of other namespaces"
    )


def parse(spec: Any) -> tuple[QueuePolicy, str]:
    """The policy of an AsyncQueue's spec, and '' or why it could not be read (then the
    policy is a pause if the spec asked for one, else no limit)."""
    raw = spec if isinstance(spec, dict) else {}
    try:
        return QueuePolicy.model_validate(raw), ""
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return QueuePolicy(paused=raw.get("paused") is True), f"spec.{where}: {first['msg']}"
