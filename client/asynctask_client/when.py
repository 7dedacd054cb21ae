"""When a delayed task is due, from what a person types (pure: no I/O, no clock of its own).

``asynctask submit --at`` and ``--in`` are read here and turned into one absolute time
before the task is created, so that the due time the operator holds lives in the object
(``spec.notBefore``), not in the client:

* ``--at`` takes an RFC 3339 time (``2026-12-05T12:00:00Z``, ``...+01:00``), or a time of
  day alone (``12:00``, ``12:00:30``, optionally ending in ``Z``), read in **UTC**: today's
  if it is still ahead, else tomorrow's. UTC, not the machine's zone, because the cluster,
  ``kubectl get`` and the status speak UTC; give an offset for any other zone.
* ``--in`` takes a delay: ``90`` (seconds), ``90s``, ``10m``, ``2h``, ``1d``, ``1h30m``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_TIME_OF_DAY = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])(:([0-5][0-9]))?Z?$")
_DELAY = re.compile(r"^([0-9]+[smhd])+$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def rfc3339(at: datetime) -> str:
    """The time as ``spec.notBefore`` carries it: UTC, whole seconds unless it has a fraction."""
    utc = at.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def parse_at(text: str, now: datetime) -> datetime:
    """``--at``: an RFC 3339 time, or a time of day in UTC (the next one from ``now``)."""
    value = text.strip()
    match = _TIME_OF_DAY.match(value)
    if match:
        hour, minute, second = int(match[1]), int(match[2]), int(match[4] or 0)
        today = now.astimezone(UTC).replace(hour=hour, minute=minute, second=second, microsecond=0)
        return today if today > now else today + timedelta(days=1)
    try:
        parsed = datetime.fromisoformat(value.upper())
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in value.upper():
        raise ValueError(
            f"--at {text!r}: expected a time of day in UTC (12:00, 12:00:30) or an RFC 3339 "
            "time with its offset (2026-12-05T12:00:00Z)"
        )
    return parsed.astimezone(UTC)


def parse_delay(text: str) -> timedelta:
    """``--in``: plain seconds, or numbers with units s, m, h, d (``1h30m``)."""
    value = text.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    if not _DELAY.match(value):
        raise ValueError(f"--in {text!r}: expected a delay such as 90, 90s, 10m, 2h, 1h30m or 1d")
    seconds = sum(int(n) * _UNITS[u] for n, u in re.findall(r"([0-9]+)([smhd])", value))
    return timedelta(seconds=seconds)


def due_time(at: str | None, delay: str | None, now: datetime) -> datetime | None:
    """The absolute due time ``--at`` or ``--in`` asks for (None: neither given)."""
    if at is not None and delay is not None:
        raise ValueError("give --at or --in, not both")
    if at is not None:
        return parse_at(at, now)
    if delay is not None:
        return now.astimezone(UTC) + parse_delay(delay)
    return None
