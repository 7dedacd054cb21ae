"""What a client POSTs, and the AsyncTask it becomes (pure: no I/O, unit-tested directly).

The body reuses the operator's spec model, :class:`asynctask_operator.spec.AsyncTaskSpec`
(the same bounds, patterns and names), refusing unknown fields; the apiserver's schema, CEL
rules and admission policy check the object again when it is created.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Annotated, Any

from pydantic import ConfigDict, Field, model_validator

from asynctask_gateway.kube import GROUP, KIND, VERSION
from asynctask_operator.spec import AsyncTaskSpec

CREATED_BY = f"{GROUP}/created-by"
REQUEST_HASH = f"{GROUP}/request-hash"
IDEMPOTENCY_KEY = f"{GROUP}/idempotency-key"
GENERATE_NAME = "task-"
MAX_BATCH = 500
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
LABEL_KEY = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


class TaskRequest(AsyncTaskSpec):
    """One task to submit: the spec's fields, plus the object's name and labels."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    name: Annotated[str | None, Field(min_length=1, max_length=253, pattern=NAME_PATTERN)] = None
    labels: dict[
        Annotated[str, Field(max_length=317, pattern=LABEL_KEY)],
        Annotated[str, Field(max_length=63)],
    ] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _not_cancelled(self) -> TaskRequest:
        if self.cancel:
            raise ValueError("cancel cannot be set on submission (POST .../cancel later)")
        return self

    def spec(self) -> dict[str, Any]:
        """The AsyncTask's spec, in the CRD's camelCase names, unset fields left out."""
        spec = self.model_dump(
            mode="json", by_alias=True, exclude_unset=True, exclude={"name", "labels", "cancel"}
        )
        return {k: v for k, v in spec.items() if v is not None}


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
    key = header.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not 1 <= len(key) <= 255 or not key.isascii() or not key.isprintable():
        raise ValueError("Idempotency-Key must be 1 to 255 printable ASCII characters")
    return key


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
