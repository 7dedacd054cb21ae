"""An AsyncQueue's status from what the gate and RabbitMQ say (pure).

The operator writes it at most about once every 2 s, and only when something a reader
sees changed (:func:`changed` ignores ``lastUpdateTime``): an idle queue costs no writes.
Conditions follow Kubernetes' conventions: ``Paused`` (spec.paused), ``Saturated``
(maxInFlight tasks in flight), ``Ready`` (the operator enforces the policy; False with the
reason when the spec could not be read), each keeping its ``lastTransitionTime`` until its
status flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asynctask_operator.queues.gate import QueueView
from asynctask_operator.queues.policy import Reason
from asynctask_operator.status import rfc3339


@dataclass(frozen=True)
class Depth:
    """The queue in RabbitMQ: messages ready, consumers (None: not known now)."""

    ready: int | None
    consumers: int | None


def queue_status(
    view: QueueView,
    depth: Depth,
    generation: int | None,
    previous: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    status: dict[str, Any] = {
        "held": view.held,
        "inFlight": view.in_flight,
        "startRate": f"{view.start_rate:.2f}",
    }
    if generation is not None:
        status["observedGeneration"] = generation
    for key, value in (("ready", depth.ready), ("consumers", depth.consumers)):
        if value is None and key in previous:
            status[key] = previous[key]  # unknown now: keep what was seen last
        elif value is not None:
            status[key] = value
    if view.oldest_since is not None:
        status["oldestHeldTime"] = rfc3339(datetime.fromtimestamp(view.oldest_since, UTC))
    status["conditions"] = _conditions(view, generation, previous, now)
    status["lastUpdateTime"] = rfc3339(now)
    return status


def _conditions(
    view: QueueView, generation: int | None, previous: dict[str, Any], now: datetime
) -> list[dict[str, Any]]:
    policy = view.policy
    cap = policy.max_in_flight
    saturated = cap is not None and view.in_flight >= cap
    wanted = [
        (
            "Paused",
            policy.paused,
            "Paused" if policy.paused else "Running",
            f"spec.paused: {view.held} held" if policy.paused else "publishing as admitted",
        ),
        (
            "Saturated",
            saturated,
            str(Reason.CONCURRENCY_LIMIT) if saturated else "BelowLimit",
            f"{view.in_flight} of {cap} in flight (spec.maxInFlight)"
            if cap is not None
            else "no in-flight cap",
        ),
        (
            "Ready",
            not view.policy_error,
            "InvalidPolicy" if view.policy_error else "Enforced",
            view.policy_error or f"enforcing: {policy.describe()}",
        ),
    ]
    old = {c.get("type"): c for c in previous.get("conditions") or []}
    out = []
    for ctype, value, reason, message in wanted:
        text = "True" if value else "False"
        before = old.get(ctype) or {}
        since = (before.get("status") == text and before.get("lastTransitionTime")) or rfc3339(now)
        cond: dict[str, Any] = {
            "type": ctype,
            "status": text,
            "reason": reason,
            "message": message,
            "lastTransitionTime": since,
        }
        if generation is not None:
            cond["observedGeneration"] = generation
        out.append(cond)
    return out


def changed(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Does ``new`` say anything ``old`` did not (the write time aside)?"""
    return {k: v for k, v in old.items() if k != "lastUpdateTime"} != {
        k: v for k, v in new.items() if k != "lastUpdateTime"
    }


def merge_patch(previous: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """``status`` as a merge patch over ``previous``: a field it no longer has (e.g.
    ``oldestHeldTime`` once nothing is held) is removed (null)."""
    patch: dict[str, Any] = dict.fromkeys(k for k in previous if k not in status)
    patch.update(status)
    return patch
