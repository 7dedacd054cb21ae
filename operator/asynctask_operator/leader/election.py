"""Leader election on a Lease, the decisions only: pure, in the style of :mod:`deadlines`.

The rules are client-go's leaderelection (what kube-controller-manager and most operators
use), so a Lease behaves as operators of Kubernetes expect:

* a Lease with a holder is held until ``leaseDurationSeconds`` after *this replica first
  saw its current renewal*, not after its ``renewTime``: renewTime was written with the
  holder's clock, and two nodes' clocks may differ by more than a lease duration. A replica
  that starts therefore waits one full lease duration before it takes a Lease whose holder
  is silent (a holder that crashed long ago included);
* a Lease without a holder (released on a graceful stop) is free at once;
* the holder renews its own Lease whatever the clocks say; a holder that finds another
  identity (or none) in its Lease has lost it;
* ``leaseTransitions`` counts the changes of holder: it is incremented by whoever takes
  the Lease from another identity (or from none, after a release).

:mod:`leader.leadership` reads and writes the Lease and keeps the time; this module only decides
and builds the spec to write.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from asynctask_operator.status import parse_time, precise_time


class Verdict(StrEnum):
    CREATE = "create"  # no Lease yet: create it, holding it
    TAKE = "take"  # free or expired: replace it (with the resourceVersion read), holding it
    RENEW = "renew"  # mine: replace it with a new renewTime
    WAIT = "wait"  # another identity holds it and its renewal is recent


#: A Kubernetes MicroTime is the status's precise time: RFC 3339 in UTC, microseconds, ``Z``.
microtime = precise_time


def parse_microtime(value: Any) -> dt.datetime | None:
    """A MicroTime (or Time) as read; None if absent or not a time (the Lease is then
    judged by its holder and the time it was seen, which need no timestamp)."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_time(value)
    except ValueError:
        return None


@dataclass(frozen=True)
class LeaseRecord:
    """A Lease as read: its spec's fields (absent ones as ``""``/None/0) and version."""

    holder: str = ""
    duration_seconds: int | None = None
    acquire_time: dt.datetime | None = None
    renew_time: dt.datetime | None = None
    transitions: int = 0
    resource_version: str = ""

    @classmethod
    def from_object(cls, obj: Mapping[str, Any]) -> LeaseRecord:
        spec = obj.get("spec") or {}
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=duration if isinstance(duration, int) and duration > 0 else None,
            acquire_time=parse_microtime(spec.get("acquireTime")),
            renew_time=parse_microtime(spec.get("renewTime")),
            transitions=transitions if isinstance(transitions, int) and transitions > 0 else 0,
            resource_version=str((obj.get("metadata") or {}).get("resourceVersion") or ""),
        )

    @property
    def renewal(self) -> tuple[str, dt.datetime | None, str]:
        """What changes each time the holder renews (or another takes it over)."""
        return (self.holder, self.renew_time, self.resource_version)


class Observation:
    """When this replica first saw the Lease's current renewal (a monotonic clock's time).

    client-go's ``observedTime``: the expiry of another's Lease is measured on this
    replica's own clock, from the moment its renewal was first seen here."""

    def __init__(self) -> None:
        self._renewal: tuple[str, dt.datetime | None, str] | None = None
        self.since = 0.0

    def see(self, record: LeaseRecord, now: float) -> float:
        """Note ``record`` as read at ``now``; returns when its renewal was first seen."""
        if record.renewal != self._renewal:
            self._renewal = record.renewal
            self.since = now
        return self.since


def verdict(
    record: LeaseRecord | None,
    me: str,
    *,
    seen_since: float,
    now: float,
    default_duration: int,
) -> Verdict:
    """What ``me`` may do with the Lease as read (``None``: there is none).

    ``seen_since`` and ``now`` are monotonic times (see :class:`Observation`). A Lease
    without a valid ``leaseDurationSeconds`` is held for ``default_duration`` (ours): a
    holder that wrote none still gets a full term, rather than none at all.
    """
    if record is None:
        return Verdict.CREATE
    if record.holder == me:
        return Verdict.RENEW
    if not record.holder:
        return Verdict.TAKE
    duration = record.duration_seconds or default_duration
    if now < seen_since + duration:
        return Verdict.WAIT
    return Verdict.TAKE


def claim(record: LeaseRecord | None, me: str, now: dt.datetime, duration: int) -> dict[str, Any]:
    """The spec that makes (or keeps) ``me`` the holder, renewed at ``now``."""
    keeping = record is not None and record.holder == me
    acquired = record.acquire_time if keeping and record is not None else None
    transitions = 0 if record is None else record.transitions + (0 if keeping else 1)
    return {
        "holderIdentity": me,
        "leaseDurationSeconds": duration,
        "acquireTime": microtime(acquired or now),
        "renewTime": microtime(now),
        "leaseTransitions": transitions,
    }


def released(record: LeaseRecord, now: dt.datetime) -> dict[str, Any]:
    """The spec of a Lease given up on a graceful stop (client-go's ReleaseOnCancel): no
    holder and a one-second term, so that a standby takes it at its next try."""
    return {
        "leaseDurationSeconds": 1,
        "acquireTime": microtime(now),
        "renewTime": microtime(now),
        "leaseTransitions": record.transitions,
    }
