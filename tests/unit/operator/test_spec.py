"""The AsyncTask spec model, webhook included (parsed once)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from asynctask_operator.spec import AsyncTaskSpec, WebhookSpec

# spec.webhook (a field of the one spec model) ------------------------------------------


def test_webhook_spec_reads_the_crd_field_names() -> None:
    spec = AsyncTaskSpec.model_validate(
        {
            "queue": "q",
            "webhook": {
                "url": "https://hooks.example.com/t?x=1",
                "includeProgress": True,
                "secretRef": {"name": "hook-key", "key": "hmac"},
            },
        }
    ).webhook
    assert spec is not None and spec.include_progress and spec.secret_ref is not None
    assert (spec.secret_ref.name, spec.secret_ref.key) == ("hook-key", "hmac")
    assert AsyncTaskSpec.model_validate({"queue": "q"}).webhook is None
    plain = WebhookSpec.model_validate({"url": "http://[2001:db8::1]:8080/x"})
    assert plain.secret_ref is None and not plain.include_progress


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/",
        "https://user:pw@hooks.example.com/",
        "https:///path",
        "https://hooks.example.com/#frag",
        "https://hooks.example.com:99999/",
        "https://hooks example.com/",
        "hooks.example.com/x",
        "https://h.example.com/" + "a" * 2048,
    ],
)
def test_webhook_spec_refuses_bad_urls(url: str) -> None:
    with pytest.raises(ValidationError):
        WebhookSpec.model_validate({"url": url})


def test_webhook_spec_refuses_bad_secret_refs() -> None:
    with pytest.raises(ValidationError):
        WebhookSpec.model_validate(
            {"url": "https://h.example.com/", "secretRef": {"name": "Not_A_Name", "key": "k"}}
        )
    with pytest.raises(ValidationError):
        WebhookSpec.model_validate(
            {"url": "https://h.example.com/", "secretRef": {"name": "ok", "key": "a/b"}}
        )


def test_an_invalid_webhook_makes_the_spec_invalid() -> None:
    with pytest.raises(ValidationError, match=r"webhook\.url"):
        AsyncTaskSpec.model_validate({"queue": "q", "webhook": {"url": "ftp://x.example/"}})
