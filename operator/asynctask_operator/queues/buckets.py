"""A token bucket: the rate limit of an AsyncQueue (pure; times are given, never read).

``rate`` tokens a second accrue up to ``burst``; each publish takes one. The bucket starts
full, so a quiet queue publishes ``burst`` at once, then one every ``1/rate`` seconds: over
any window of ``t`` seconds at most ``burst + rate·t`` tasks are published.
"""

from __future__ import annotations

import math


class TokenBucket:
    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def reshape(self, rate: float, burst: int, now: float) -> None:
        """A new rate or burst: the tokens saved so far are kept, up to the new burst."""
        self._refill(now)
        self.rate, self.burst = rate, burst
        self._tokens = min(self._tokens, float(burst))

    def _refill(self, now: float) -> None:
        if now > self._at:
            self._tokens = min(float(self.burst), self._tokens + (now - self._at) * self.rate)
            self._at = now

    def available(self, now: float) -> int:
        """Whole tokens there are now."""
        self._refill(now)
        return math.floor(self._tokens + 1e-9)

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        self._refill(now)
        if self._tokens + 1e-9 >= 1.0:
            self._tokens = max(0.0, self._tokens - 1.0)
            return True
        return False

    def next_token(self, now: float) -> float:
        """When the next whole token is there (``now`` if one is)."""
        self._refill(now)
        missing = 1.0 - self._tokens
        return now if missing <= 1e-9 else now + missing / self.rate


class RateMeter:
    """Events per second over the last minute, in one-second slots (for ``startRate``)."""

    __slots__ = ("_counts", "_window")

    def __init__(self, window: int = 60) -> None:
        self._window = window
        self._counts: dict[int, int] = {}

    def add(self, now: float, count: int = 1) -> None:
        second = int(now)
        self._counts[second] = self._counts.get(second, 0) + count
        if len(self._counts) > self._window + 1:
            self._drop(second)

    def rate(self, now: float) -> float:
        self._drop(int(now))
        return sum(self._counts.values()) / self._window

    def _drop(self, second: int) -> None:
        for old in [s for s in self._counts if s <= second - self._window]:
            del self._counts[old]
