"""Waiting out an outage: doubling delays between attempts, and a cause worth logging.

Standard library only, so that code which waits out an apiserver outage (the operator's
status inbox) shares the broker connections' backoff without loading pika.
"""

from __future__ import annotations

__all__ = ["Backoff", "describe"]


def describe(exc: BaseException) -> str:
    """A cause worth logging: pika raises several errors whose ``str()`` is empty."""
    text = str(exc).strip()
    if not text or text in ("()", "''"):
        # e.g. AMQPConnectionError wraps the connector's error (whose str() is empty too)
        inner = [repr(a) if isinstance(a, BaseException) else str(a) for a in exc.args]
        text = ", ".join(i for i in inner if i.strip()) or "no detail given"
    return f"{type(exc).__name__}: {text}"


class Backoff:
    """Delays between reconnection attempts: doubling from ``first`` up to ``maximum``."""

    def __init__(self, maximum: float, first: float = 0.5) -> None:
        self.first = first
        self.maximum = maximum
        self._delay = first

    def next(self) -> float:
        delay = self._delay
        self._delay = min(delay * 2, self.maximum)
        return delay

    def reset(self) -> None:
        self._delay = self.first
