"""Headers and query parameters clients send: durations, Prefer: wait, If-None-Match."""

from __future__ import annotations

import pytest

from asynctask_gateway.params import (
    etag_matches,
    parse_duration,
    parse_flag,
    prefer_wait,
    wait_timeout,
)
from asynctask_gateway.settings import MAX_WAIT_SECONDS


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("30", 30), ("1.5s", 1.5), ("500ms", 0.5), ("1m", 60)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "-1s", "1h", "1 s s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_the_wait_is_capped_below_proxy_idle_limits() -> None:
    assert wait_timeout("10m", 30) == MAX_WAIT_SECONDS < 60
    assert wait_timeout(None, 30) == 30
    assert wait_timeout("2s", 30) == 2


def test_prefer_wait() -> None:
    assert prefer_wait([]) is None
    assert prefer_wait(["respond-async"]) is None
    assert prefer_wait(["respond-async, wait=10"]) == 10
    assert prefer_wait(["handling=lenient", "wait=5"]) == 5
    assert prefer_wait(["wait=3600"]) == int(MAX_WAIT_SECONDS)


def test_if_none_match() -> None:
    assert etag_matches('"42"', "42")
    assert etag_matches('W/"42"', "42")
    assert etag_matches('"1", "42"', "42")
    assert etag_matches("*", "42")
    assert not etag_matches('"41"', "42")
    assert not etag_matches(None, "42")


def test_a_flag_is_true_false_or_absent_and_nothing_else() -> None:
    assert parse_flag("archived", "true") and not parse_flag("archived", "false")
    assert not parse_flag("archived", None)
    for bad in ("1", "yes", "True", ""):
        with pytest.raises(ValueError, match="archived must be true or false"):
            parse_flag("archived", bad)
