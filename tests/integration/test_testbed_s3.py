"""The test bed's S3 server: objects through presigned URLs as the project moves them, a
wrong key refused, and an outage that keeps the data."""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request
import uuid

import pytest

from testbed import S3Server


def test_a_presigned_put_and_get_round_trip_and_survive_a_server_restart(s3: S3Server) -> None:
    bucket = s3.create_bucket(f"t-{uuid.uuid4().hex[:8]}")
    client = s3.client()
    body = hashlib.sha256(b"seed").digest() * 4096  # 128 KiB
    put = client.generate_presigned_url(
        "put_object", Params={"Bucket": bucket, "Key": "ns/uid/result"}, ExpiresIn=60
    )
    request = urllib.request.Request(put, data=body, method="PUT")
    with urllib.request.urlopen(request, timeout=30) as answer:
        assert answer.status == 200
    # The posix backend keeps the object as a file: what a test can look at directly.
    assert (s3.data_dir / bucket / "ns" / "uid" / "result").read_bytes() == body

    s3.stop_server()
    try:
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(put, timeout=5)
    finally:
        s3.start_server()

    get = client.generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "ns/uid/result"}, ExpiresIn=60
    )
    with urllib.request.urlopen(get, timeout=30) as answer:
        assert hashlib.sha256(answer.read()).digest() == hashlib.sha256(body).digest()


def test_a_url_signed_with_another_secret_is_refused(s3: S3Server) -> None:
    bucket = s3.create_bucket(f"t-{uuid.uuid4().hex[:8]}")
    stranger = S3Server(access_key=s3.access_key, secret_key="not-" + s3.secret_key)
    stranger.port = s3.port
    url = stranger.client().generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "anything"}, ExpiresIn=60
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=30)
    assert refused.value.code == 403
