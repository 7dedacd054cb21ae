"""The token bucket and the start-rate meter (queues.buckets)."""

from __future__ import annotations

from asynctask_operator.queues.buckets import RateMeter, TokenBucket


def test_the_bucket_starts_full_and_refills_at_its_rate_up_to_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=4, now=100.0)
    assert [bucket.take(100.0) for _ in range(5)] == [True] * 4 + [False]
    assert bucket.next_token(100.0) == 100.5
    assert bucket.available(100.49) == 0 and bucket.take(100.5)
    assert bucket.available(1000.0) == 4  # never more than burst


def test_a_reshaped_bucket_keeps_what_it_saved_up_to_the_new_burst() -> None:
    bucket = TokenBucket(rate=1.0, burst=10, now=0.0)
    bucket.reshape(rate=5.0, burst=2, now=1.0)
    assert bucket.available(1.0) == 2
    assert bucket.take(1.0) and bucket.take(1.0) and not bucket.take(1.0)
    assert bucket.next_token(1.0) == 1.2


def test_a_slow_rate_publishes_one_every_so_many_seconds() -> None:
    bucket = TokenBucket(rate=0.5, burst=1, now=0.0)
    taken = [t for t in range(20) if bucket.take(float(t))]
    assert taken == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]


def test_the_meter_averages_over_the_last_minute() -> None:
    meter = RateMeter()
    for second in range(120):
        meter.add(second + 0.5, 3)
    assert meter.rate(119.9) == 3.0  # seconds 60..119
    assert meter.rate(149.9) == 1.5
    assert meter.rate(500.0) == 0.0
