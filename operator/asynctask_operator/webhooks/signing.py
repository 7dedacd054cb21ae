"""Webhook signatures: HMAC-SHA256 over ``"<timestamp>.<body>"``.

Every delivery of a task whose ``spec.webhook.secretRef`` names a key carries two headers:

* ``X-AsyncTask-Timestamp``: Unix time in whole seconds when the attempt was sent;
* ``X-AsyncTask-Signature``: ``v1=<hex>``, the HMAC-SHA256 of ``<timestamp>.<body>`` under the
  key (the raw bytes of the Secret's value).

Signing the timestamp with the body lets a receiver refuse replays: :func:`verify_signature`
accepts a signature only while the timestamp is within ``tolerance`` seconds of its clock. The
header may hold several comma-separated signatures (``v1=<a>,v1=<b>``) so that keys can be
rotated; one valid ``v1`` signature is enough.

This module depends on the standard library only, so receivers can import it or copy it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

TIMESTAMP_HEADER = "X-AsyncTask-Timestamp"
SIGNATURE_HEADER = "X-AsyncTask-Signature"
SCHEME = "v1"
#: How far a receiver accepts a timestamp from its own clock, by default (seconds).
DEFAULT_TOLERANCE = 300.0


def _key(secret: bytes | str) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def sign(secret: bytes | str, timestamp: int | str, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``b"<timestamp>." + body`` under ``secret``."""
    message = str(timestamp).encode("ascii") + b"." + body
    return hmac.new(_key(secret), message, hashlib.sha256).hexdigest()


def signature_headers(secret: bytes | str, body: bytes, now: float | None = None) -> dict[str, str]:
    """The timestamp and signature headers for one delivery attempt of ``body``."""
    timestamp = str(int(time.time() if now is None else now))
    return {
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: f"{SCHEME}={sign(secret, timestamp, body)}",
    }


def verify_signature(
    secret: bytes | str,
    timestamp: str,
    body: bytes,
    header: str,
    tolerance: float = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> bool:
    """Whether ``header`` (the ``X-AsyncTask-Signature`` value) signs ``body`` as sent at
    ``timestamp`` (the ``X-AsyncTask-Timestamp`` value) under ``secret``.

    ``body`` must be the raw request body, byte for byte (not re-serialised JSON). False when
    the timestamp is not an integer or is more than ``tolerance`` seconds away from ``now``
    (default: the current time), or when no ``v1`` signature matches. Comparison is constant
    time.
    """
    timestamp = timestamp.strip()
    if not timestamp.isdigit():
        return False
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > tolerance:
        return False
    expected = sign(secret, timestamp, body).encode("ascii")
    valid = False
    for part in header.split(","):
        scheme, _, value = part.strip().partition("=")
        if scheme == SCHEME and hmac.compare_digest(value.strip().lower().encode(), expected):
            valid = True  # no early exit: the time taken does not depend on which one matched
    return valid
