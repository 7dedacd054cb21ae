"""What a client POSTs, and the AsyncTask it becomes (pure: no I/O, unit-tested directly).

The body reuses the operator's spec model, :class:`asynctask_operator.spec.AsyncTaskSpec`
(the same bounds, patterns and names), refusing unknown fields; the apiserver's schema, CEL
rules and admission policy check the object again when it is created.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from asynctask_gateway import patterns
from asynctask_gateway.kube import GROUP, KIND, VERSION
from asynctask_operator.spec import AsyncTaskSpec, WebhookSpec
from asynctask_worker.payloads import PayloadRef

CREATED_BY = f"{GROUP}/created-by"
REQUEST_HASH = f"{GROUP}/request-hash"
IDEMPOTENCY_KEY = f"{GROUP}/idempotency-key"
GENERATE_NAME = "task-"
MAX_BATCH = 500
#: The spec's integer fields (by their JSON names): JSON Schema counts 10.0 as the integer 10.
INTEGERS = frozenset(
    field.alias or name
    for name, field in AsyncTaskSpec.model_fields.items()
    if field.annotation in (int, int | None)
)


class GatewayWebhook(WebhookSpec):
    """``spec.webhook`` as the gateway takes it: a URL its pattern describes exactly."""

    url: Annotated[str, Field(min_length=1, max_length=2048, pattern=patterns.WEBHOOK_URL)]


class TaskRequest(AsyncTaskSpec):
    """One task to submit: the spec's fields, plus the object's name and labels. Types are
    JSON Schema's: a number is not a string, true is not 1, and an integer may be 10.0."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: Annotated[
        str | None, Field(min_length=1, max_length=patterns.MAX_NAME, pattern=patterns.NAME_PATTERN)
    ] = None
    labels: dict[
        Annotated[str, Field(max_length=patterns.MAX_LABEL_KEY, pattern=patterns.LABEL_KEY)],
        # The value's pattern is the apiserver's to enforce (its refusal, a 422 naming
        # metadata.labels, passes through verbatim); the document states it.
        Annotated[str, Field(max_length=63, json_schema_extra={"pattern": patterns.LABEL_VALUE})],
    ] = Field(default_factory=dict)
    cancel: Literal[False] = Field(
        False, description="Cannot be set on submission: POST .../cancel later."
    )
    webhook: GatewayWebhook | None = None
    not_before: Annotated[
        str | None,
        Field(
            alias="notBefore",
            max_length=64,
            pattern=patterns.RFC3339_TIME,
            description="The earliest time the task is queued (RFC 3339, e.g. "
            "2026-12-05T12:00:00Z): until then it is Pending, held by the operator, with the "
            "message 'scheduled for <time>'. A time in the past queues it at once.",
        ),
    ] = None

    request_ref: PayloadRef | None = Field(
        None,
        alias="requestRef",
        description="The request stored in object storage (POST …/payloads answers it), "
        "instead of request: the worker downloads it (docs/payloads.md).",
    )

    @classmethod
    def parse(cls, raw: Any) -> TaskRequest:
        """The body of a POST, validated strictly as the document's JSON Schema reads it
        (integral numbers taken as integers)."""
        if isinstance(raw, dict):
            raw = {k: _integral(v) if k in INTEGERS else v for k, v in raw.items()}
        return cls.model_validate(raw, strict=True)

    @model_validator(mode="after")
    def _one_request(self) -> TaskRequest:
        if self.request is not None and self.request_ref is not None:
            raise ValueError("give request or requestRef, not both")
        return self

    @model_validator(mode="after")
    def _label_prefix(self) -> TaskRequest:
        for key in self.labels:
            if len(key.rpartition("/")[0]) > patterns.MAX_NAME:
                raise ValueError(f"the prefix of the label key {key!r} is over 253 characters")
        return self

    def spec(self) -> dict[str, Any]:
        """The AsyncTask's spec, in the CRD's camelCase names, unset fields left out."""
        spec = self.model_dump(
            mode="json", by_alias=True, exclude_unset=True, exclude={"name", "labels", "cancel"}
        )
        return {k: v for k, v in spec.items() if v is not None}


def _integral(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def request_hash(body: Any) -> str:
    """A digest of what was asked, independent of key order and whitespace."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def idempotent_name(namespace: str, user: str, key: str) -> str:
    """The task name an Idempotency-Key stands for: the same (namespace, caller, key)
    always names the same task, and two callers' keys never meet."""
    digest = hashlib.sha256("\0".join((namespace, user, key)).encode()).digest()
    return "t-" + base64.b32encode(digest).decode().rstrip("=").lower()[:24]


def parse_idempotency_key(header: str | None) -> str | None:
    """The key of an ``Idempotency-Key`` header: a structured-field string (``"..."``) or a
    bare token, 1-255 printable ASCII characters; ``None`` when absent."""
    if header is None:
        return None
    value = header.strip()
    if not patterns.matches(patterns.IDEMPOTENCY_KEY, value):
        raise ValueError("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value


def manifest(
    req: TaskRequest,
    namespace: str,
    *,
    user: str,
    digest: str,
    name: str | None = None,
    key: str | None = None,
) -> dict[str, Any]:
    """The AsyncTask to create: ``name`` (an idempotent one) or the body's, else a
    generated one; the creator and the request's digest recorded in annotations."""
    annotations = {CREATED_BY: user, REQUEST_HASH: digest}
    if key is not None:
        annotations[IDEMPOTENCY_KEY] = hashlib.sha256(key.encode()).hexdigest()[:32]
    metadata: dict[str, Any] = {"namespace": namespace, "annotations": annotations}
    if req.labels:
        metadata["labels"] = dict(req.labels)
    chosen = req.name or name
    if chosen:
        metadata["name"] = chosen
    else:
        metadata["generateName"] = GENERATE_NAME
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": metadata,
        "spec": req.spec(),
    }
