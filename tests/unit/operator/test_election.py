"""The Lease rules (leader/election.py): who may take, renew or must wait, and what is written."""

from __future__ import annotations

import datetime as dt

import pytest

from asynctask_operator.leader.election import (
    LeaseRecord,
    Observation,
    Verdict,
    claim,
    microtime,
    parse_microtime,
    released,
    verdict,
)

ME, OTHER = "op-0_aaaa", "op-1_bbbb"
T0 = dt.datetime(2026, 11, 24, 12, 0, 0, 123456, tzinfo=dt.UTC)


def lease(**spec: object) -> LeaseRecord:
    return LeaseRecord.from_object({"metadata": {"resourceVersion": "7"}, "spec": spec})


def decide(record: LeaseRecord | None, *, seen: float = 100.0, now: float = 100.0) -> Verdict:
    return verdict(record, ME, seen_since=seen, now=now, default_duration=15)


def test_no_lease_is_created() -> None:
    assert decide(None) is Verdict.CREATE


def test_my_lease_is_renewed_whatever_the_clocks_say() -> None:
    mine = lease(holderIdentity=ME, leaseDurationSeconds=15, renewTime=microtime(T0))
    assert decide(mine, seen=0, now=10_000) is Verdict.RENEW
    assert decide(mine, seen=100, now=100) is Verdict.RENEW


def test_another_holders_lease_is_waited_for_until_its_term_after_it_was_seen() -> None:
    theirs = lease(holderIdentity=OTHER, leaseDurationSeconds=15, renewTime=microtime(T0))
    assert decide(theirs, seen=100, now=100) is Verdict.WAIT
    assert decide(theirs, seen=100, now=114.999) is Verdict.WAIT
    assert decide(theirs, seen=100, now=115.0) is Verdict.TAKE  # the boundary: expired
    assert decide(theirs, seen=100, now=500) is Verdict.TAKE


def test_the_holders_own_duration_counts_not_ours() -> None:
    theirs = lease(holderIdentity=OTHER, leaseDurationSeconds=60)
    assert decide(theirs, seen=100, now=159) is Verdict.WAIT
    assert decide(theirs, seen=100, now=160) is Verdict.TAKE


@pytest.mark.parametrize("duration", [None, 0, -3, "15"])
def test_a_lease_without_a_valid_duration_is_held_for_ours(duration: object) -> None:
    spec: dict[str, object] = {"holderIdentity": OTHER}
    if duration is not None:
        spec["leaseDurationSeconds"] = duration
    theirs = lease(**spec)
    assert theirs.duration_seconds is None
    assert decide(theirs, seen=100, now=114) is Verdict.WAIT
    assert decide(theirs, seen=100, now=115) is Verdict.TAKE


@pytest.mark.parametrize("holder", [None, ""])
def test_a_released_lease_is_taken_at_once(holder: str | None) -> None:
    free = lease(holderIdentity=holder, leaseDurationSeconds=1, renewTime=microtime(T0))
    assert decide(free, seen=100, now=100) is Verdict.TAKE


def test_an_empty_lease_reads_as_free_with_nothing_known() -> None:
    record = LeaseRecord.from_object({"metadata": {}})
    assert record == LeaseRecord()
    assert decide(record) is Verdict.TAKE


def test_a_lease_renewed_long_ago_by_its_clock_is_still_waited_for_a_term() -> None:
    """renewTime comes from the holder's clock, which may be off: expiry counts from when
    this replica saw the renewal, as client-go does."""
    stale = lease(holderIdentity=OTHER, leaseDurationSeconds=15, renewTime="2001-01-01T00:00:00Z")
    assert decide(stale, seen=100, now=101) is Verdict.WAIT


def test_an_observation_restarts_with_each_renewal_only() -> None:
    seen = Observation()
    first = lease(holderIdentity=OTHER, renewTime=microtime(T0))
    assert seen.see(first, 10.0) == 10.0
    assert seen.see(first, 14.0) == 10.0  # the same renewal, read again
    renewed = lease(holderIdentity=OTHER, renewTime=microtime(T0 + dt.timedelta(seconds=5)))
    assert seen.see(renewed, 15.0) == 15.0
    moved = LeaseRecord.from_object(
        {"metadata": {"resourceVersion": "8"}, "spec": {"holderIdentity": OTHER}}
    )
    assert seen.see(moved, 16.0) == 16.0  # another version, even with the same fields


def test_creating_claims_with_no_transition() -> None:
    spec = claim(None, ME, T0, 15)
    assert spec == {
        "holderIdentity": ME,
        "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-24T12:00:00.123456Z",
        "renewTime": "2026-11-24T12:00:00.123456Z",
        "leaseTransitions": 0,
    }


def test_taking_over_counts_a_transition_and_acquires_now() -> None:
    theirs = lease(
        holderIdentity=OTHER, leaseTransitions=4, acquireTime="2026-11-24T11:00:00.000000Z"
    )
    spec = claim(theirs, ME, T0, 15)
    assert spec["leaseTransitions"] == 5
    assert spec["acquireTime"] == spec["renewTime"] == "2026-11-24T12:00:00.123456Z"
    assert spec["holderIdentity"] == ME


def test_taking_a_released_lease_counts_a_transition_too() -> None:
    free = lease(leaseTransitions=5, leaseDurationSeconds=1)
    assert claim(free, ME, T0, 15)["leaseTransitions"] == 6


def test_renewing_keeps_the_acquire_time_and_the_count() -> None:
    mine = lease(holderIdentity=ME, leaseTransitions=2, acquireTime="2026-11-24T11:00:00.5Z")
    later = T0 + dt.timedelta(seconds=5)
    spec = claim(mine, ME, later, 15)
    assert spec["leaseTransitions"] == 2
    assert spec["acquireTime"] == "2026-11-24T11:00:00.500000Z"
    assert spec["renewTime"] == "2026-11-24T12:00:05.123456Z"


def test_releasing_leaves_no_holder_and_a_one_second_term() -> None:
    mine = lease(holderIdentity=ME, leaseTransitions=3, leaseDurationSeconds=15)
    spec = released(mine, T0)
    assert "holderIdentity" not in spec
    assert spec["leaseDurationSeconds"] == 1 and spec["leaseTransitions"] == 3
    assert LeaseRecord.from_object({"spec": spec}).holder == ""


def test_microtime_is_utc_with_microseconds_and_z() -> None:
    local = dt.datetime(2026, 11, 24, 13, 0, 0, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert microtime(local) == "2026-11-24T12:00:00.000000Z"
    assert parse_microtime(microtime(T0)) == T0


@pytest.mark.parametrize("value", [None, "", 17, "yesterday"])
def test_a_time_that_is_not_one_reads_as_none(value: object) -> None:
    assert parse_microtime(value) is None
