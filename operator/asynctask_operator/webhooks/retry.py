"""The webhook retry policy, pure: how long to wait after a failed attempt, and when to stop.

Exponential backoff with jitter (each wait is 50-100% of the nominal one), at least what
the receiver's ``Retry-After`` asks (up to the longest wait), and a give-up after
``max_attempts`` attempts or once the next try would start after ``max_age_seconds``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from asynctask_operator.settings import WebhookConfig


def backoff_delay(
    retry: int, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """The wait before retry number ``retry`` (1 after the first failed attempt): the nominal
    ``min(cap, base * 2**(retry-1))``, jittered to between 50% and 100% of it."""
    nominal = min(cap, base * 2.0 ** min(retry - 1, 64))
    return nominal * (0.5 + 0.5 * rand())


@dataclass(frozen=True)
class Failure:
    """What one failed attempt of an event said."""

    error: str
    retryable: bool
    retry_after: float | None = None  # seconds, from the receiver's Retry-After


def next_try(
    failure: Failure,
    attempts: int,
    age: float,
    config: WebhookConfig,
    rand: Callable[[], float] = random.random,
) -> tuple[float | None, str]:
    """After ``attempts`` attempts over ``age`` seconds: the wait before the next attempt
    (None: the event is given up) and the error to report."""
    if not failure.retryable:
        return None, failure.error
    delay = backoff_delay(attempts, config.backoff_base_seconds, config.backoff_max_seconds, rand)
    if failure.retry_after is not None:
        delay = max(delay, min(failure.retry_after, config.backoff_max_seconds))
    if attempts >= config.max_attempts:
        return None, f"gave up after {attempts} attempts: {failure.error}"
    if age + delay > config.max_age_seconds:
        return None, f"gave up after {attempts} attempts in {age:.0f}s: {failure.error}"
    return delay, failure.error
