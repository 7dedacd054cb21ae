"""The OpenAPI document's patterns and the validators the handlers run accept the same strings:
every string a pattern describes is accepted, and every other string is refused (property
tests over strings drawn from the pattern and over arbitrary text)."""

from __future__ import annotations

from collections.abc import Callable

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from asynctask_gateway import patterns
from asynctask_gateway.app import valid_name
from asynctask_gateway.listing import decode_continue, encode_continue, parse_selector
from asynctask_gateway.params import parse_duration
from asynctask_gateway.submissions import TaskRequest, parse_idempotency_key

CHECK = settings(max_examples=60, derandomize=True, suppress_health_check=[HealthCheck.too_slow])


def accepts(parse: Callable[[str], object]) -> Callable[[str], bool]:
    def accepted(text: str) -> bool:
        try:
            parse(text)
        except ValueError:
            return False
        return True

    return accepted


# What each pattern stands for: the validator the gateway runs on such a value.
VALIDATORS: dict[str, Callable[[str], bool]] = {
    patterns.DURATION: accepts(parse_duration),
    patterns.LABEL_SELECTOR: accepts(parse_selector),
    patterns.CONTINUE: accepts(decode_continue),
    # A header's surrounding white space is not part of its value (HTTP strips it).
    patterns.IDEMPOTENCY_KEY: lambda text: (
        text == text.strip() and accepts(parse_idempotency_key)(text)
    ),
}
TEXT = st.text(alphabet=st.characters(codec="latin-1"), max_size=40)


@pytest.mark.parametrize(
    "pattern", list(VALIDATORS), ids=["duration", "selector", "continue", "key"]
)
def test_every_string_a_pattern_describes_is_accepted(pattern: str) -> None:
    @CHECK
    @given(st.from_regex(pattern, fullmatch=True))
    def check(text: str) -> None:
        if pattern == patterns.IDEMPOTENCY_KEY:
            text = text.strip() or "k"
        assert VALIDATORS[pattern](text), text

    check()


@pytest.mark.parametrize(
    "pattern", list(VALIDATORS), ids=["duration", "selector", "continue", "key"]
)
def test_the_validators_accept_exactly_what_the_pattern_describes(pattern: str) -> None:
    @CHECK
    @given(TEXT)
    def check(text: str) -> None:
        if pattern == patterns.IDEMPOTENCY_KEY and text != text.strip():
            return
        assert VALIDATORS[pattern](text) == patterns.matches(pattern, text), repr(text)

    check()


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("a", True),
        ("a.b-c", True),
        ("a" * 253, True),
        ("a" * 254, False),
        ("a..b", False),
        ("a.-b", False),
        ("-a", False),
        ("A", False),
        (".", False),
        ("..", False),
        ("a%2Fb", False),
    ],
)
def test_a_task_name_in_a_path_is_a_dns_subdomain(text: str, valid: bool) -> None:
    assert valid_name(text) is valid


@CHECK
@given(
    st.from_regex(patterns.LABEL_KEY, fullmatch=True),
    st.from_regex(patterns.LABEL_VALUE, fullmatch=True),
)
def test_labels_the_patterns_describe_are_taken(key: str, value: str) -> None:
    if len(key) > patterns.MAX_LABEL_KEY or len(key.rpartition("/")[0]) > patterns.MAX_NAME:
        return
    assert TaskRequest.parse({"queue": "q", "labels": {key: value}}).labels == {key: value}


def test_a_continue_token_the_gateway_made_reads_back() -> None:
    assert decode_continue(encode_continue("task-abc.1")) == "task-abc.1"
    assert patterns.matches(patterns.CONTINUE, encode_continue("x" * 100))


@pytest.mark.parametrize(
    ("body", "taken"),
    [
        ({"queue": "q", "retries": 10.0}, 10),
        ({"queue": "q", "retries": 10}, 10),
        ({"queue": "q", "retries": 10.5}, None),
        ({"queue": "q", "retries": True}, None),
        ({"queue": "q", "retries": "10"}, None),
    ],
)
def test_integers_are_json_schema_integers(body: dict[str, object], taken: int | None) -> None:
    """10.0 is the integer 10, as JSON Schema (and so the document) counts it; a boolean,
    a string or a fraction is not an integer."""
    if taken is None:
        with pytest.raises(ValidationError):
            TaskRequest.parse(body)
    else:
        assert TaskRequest.parse(body).retries == taken


@pytest.mark.parametrize(
    "body",
    [
        {"queue": "q", "cancel": True},
        {"queue": "q", "webhook": {"url": "http://a/x", "includeProgress": "yes"}},
        {"queue": 5},
        {"queue": "q", "webhook": {"url": "http://a:65536/"}},
        {"queue": "q", "webhook": {"url": "http://[::1]/"}},
        {"queue": "q", "labels": {"a..b/c": "d"}},
    ],
)
def test_what_the_document_refuses_the_gateway_refuses(body: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TaskRequest.parse(body)


ALL_PATTERNS = [
    getattr(patterns, name)
    for name in (
        "NAMESPACE_PATTERN",
        "NAME_PATTERN",
        "LABEL_KEY",
        "LABEL_VALUE",
        "DURATION",
        "IDEMPOTENCY_KEY",
        "CONTINUE",
        "LABEL_SELECTOR",
        "WEBHOOK_URL",
    )
]
#: Characters the regex engines disagree about (white space above all), and plain ones.
TRICKY = st.text(
    alphabet=st.sampled_from('a-z0.:/=!,() \t\n\r\x0b\x0c\x1c\x1d\x85\xa0\u2028\ufeff"#~'),
    max_size=30,
)


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_the_engine_schemathesis_validates_with_reads_each_pattern_as_python_does(
    pattern: str,
) -> None:
    validator = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})

    @CHECK
    @given(st.one_of(TRICKY, st.from_regex(pattern, fullmatch=True)))
    def check(text: str) -> None:
        assert validator.is_valid(text) == patterns.matches(pattern, text), repr(text)

    check()
