"""Webhook signatures: round trip, tampering, replays, key rotation."""

from __future__ import annotations

from asynctask_operator.webhooks.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signature_headers,
    verify_signature,
)

# signatures --------------------------------------------------------------------------


def test_signature_round_trip() -> None:
    body = b'{"id":"x"}'
    headers = signature_headers(b"s3cret", body, now=1_700_000_000)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[SIGNATURE_HEADER].startswith("v1=")
    assert verify_signature(
        b"s3cret", headers[TIMESTAMP_HEADER], body, headers[SIGNATURE_HEADER], now=1_700_000_010
    )
    assert verify_signature(
        "s3cret", "1700000000", body, headers[SIGNATURE_HEADER], now=1_700_000_000
    )


def test_tampering_fails_verification() -> None:
    body = b'{"id":"x","data":{"phase":"Failed"}}'
    ts = "1700000000"
    header = f"v1={sign(b'k', ts, body)}"
    now = 1_700_000_001
    assert verify_signature(b"k", ts, body, header, now=now)
    assert not verify_signature(b"k", ts, body.replace(b"Failed", b"Succeeded"), header, now=now)
    assert not verify_signature(b"other", ts, body, header, now=now)
    assert not verify_signature(b"k", "1700000001", body, header, now=now)  # timestamp changed
    assert not verify_signature(b"k", ts, body, header.replace("v1=", "v0="), now=now)
    assert not verify_signature(b"k", ts, body, "v1=" + "0" * 64, now=now)
    assert not verify_signature(b"k", ts, body, "garbage \u00e9", now=now)
    assert not verify_signature(b"k", "not-a-number", body, header, now=now)


def test_replays_outside_the_tolerance_fail() -> None:
    body, ts = b"{}", "1700000000"
    header = f"v1={sign(b'k', ts, body)}"
    assert verify_signature(b"k", ts, body, header, tolerance=300, now=1_700_000_300)
    assert not verify_signature(b"k", ts, body, header, tolerance=300, now=1_700_000_301)
    assert not verify_signature(b"k", ts, body, header, tolerance=300, now=1_699_999_699)


def test_any_of_several_signatures_verifies_during_key_rotation() -> None:
    body, ts = b"{}", "1700000000"
    header = f"v1={sign(b'old', ts, body)}, v1={sign(b'new', ts, body)}"
    assert verify_signature(b"new", ts, body, header, now=1_700_000_000)
    assert verify_signature(b"old", ts, body, header, now=1_700_000_000)
