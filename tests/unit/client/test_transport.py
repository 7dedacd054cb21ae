"""The pure parts both transports share: the spec, the POST body, names, SSE framing."""

from __future__ import annotations

from asynctask_client.gateway import sse_events
from asynctask_client.transport import Submission, idempotent_name, request_hash, spec_of


def test_the_spec_leaves_unset_fields_to_the_crd_and_names_them_as_the_crd_does() -> None:
    assert spec_of("q", {"x": 1}) == {"queue": "q", "request": {"x": 1}}
    spec = spec_of(
        "q",
        None,
        timeout=60,
        queue_timeout=600,
        retries=2,
        retry_backoff=5,
        ttl=3600,
        webhook="https://hooks.example.com/t",
    )
    assert spec == {
        "queue": "q",
        "request": None,
        "timeoutSeconds": 60,
        "queueTimeoutSeconds": 600,
        "retries": 2,
        "retryBackoffSeconds": 5,
        "ttlSecondsAfterFinished": 3600,
        "webhook": {"url": "https://hooks.example.com/t"},
    }
    secret = {"url": "https://h", "secretRef": {"name": "s", "key": "k"}}
    assert spec_of("q", None, webhook=secret)["webhook"] == secret


def test_the_gateway_body_carries_name_and_labels_beside_the_spec() -> None:
    body = Submission({"queue": "q", "request": 1}, "n", {"a": "b"}).body()
    assert body == {"queue": "q", "request": 1, "name": "n", "labels": {"a": "b"}}
    assert Submission({"queue": "q"}).body() == {"queue": "q"}


def test_idempotent_names_are_stable_valid_and_per_namespace() -> None:
    name = idempotent_name("ns", "key-1")
    assert name == idempotent_name("ns", "key-1") and name.startswith("k-")
    assert len(name) == 26 and name == name.lower() and name.isascii()
    assert name != idempotent_name("other", "key-1") != idempotent_name("ns", "key-2")
    assert request_hash({"a": 1, "b": [2]}) == request_hash({"b": [2], "a": 1})


def test_sse_events_are_parsed_with_ids_names_multiline_data_and_comments_skipped() -> None:
    lines = [
        "retry: 3000",
        "",
        ": keepalive",
        "",
        "id: 7",
        "event: Processing",
        'data: {"a":',
        "data: 1}",
        "",
        "event: deleted",
        "data:x",
        "",
    ]
    events = list(sse_events(iter(lines)))
    assert [(e.id, e.event, e.data) for e in events] == [
        ("7", "Processing", '{"a":\n1}'),
        (None, "deleted", "x"),
    ]


def test_a_due_time_becomes_spec_not_before() -> None:
    spec = spec_of("q", None, not_before="2026-12-05T12:00:00Z")
    assert spec == {"queue": "q", "request": None, "notBefore": "2026-12-05T12:00:00Z"}
