"""Which stored objects a task may name, and whose an object under the prefix is (pure).

The operator presigns only objects a task owns: a ``spec.requestRef`` in the configured
bucket under its own namespace's prefix, and the task's one result key. What a worker
reports as ``result_ref`` must be that result key, so a worker (or a forged status
message) cannot make a task point at another namespace's bytes. Keys are laid out as
:mod:`asynctask_worker.payloads` says: ``<prefix><ns>/<uid>/result`` and
``<prefix><ns>/uploads/<id>``; :func:`parse_key` reads them back for deletions and the
sweep, and anything else under the prefix is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

from asynctask_worker.payloads import PayloadRef, namespace_prefix, result_key

#: How to turn offload on, in every message that says it is off.
ENABLE_HINT: Final = (
    "set ASYNCTASK_S3_ENDPOINT and ASYNCTASK_S3_BUCKET on the operator and the gateway "
    "(the chart's payloads.endpoint and payloads.bucket; docs/payloads.md)"
)
#: The reasons a task ends in Error for its payload references.
STORAGE_OFF: Final = "PayloadStorageOff"
REQUEST_REF_REFUSED: Final = "RequestRefRefused"
RESULT_REF_REFUSED: Final = "ResultRefRefused"

_UPLOADS = "uploads"


def request_ref_refusal(
    ref: PayloadRef, bucket: str | None, prefix: str, namespace: str
) -> tuple[str, str] | None:
    """Why a task's ``spec.requestRef`` is refused (reason, message), or None if it is its
    namespace's to name. ``bucket`` None: storage is off."""
    if bucket is None:
        return (
            STORAGE_OFF,
            f"spec.requestRef names s3://{ref.bucket}/{ref.key} but this operator has no "
            f"object storage configured; to enable large payloads, {ENABLE_HINT}",
        )
    if ref.bucket != bucket:
        return (
            REQUEST_REF_REFUSED,
            f"spec.requestRef names bucket {ref.bucket!r}; only the configured bucket "
            f"{bucket!r} may be used",
        )
    own = namespace_prefix(prefix, namespace)
    if not _under(ref.key, own):
        return (
            REQUEST_REF_REFUSED,
            f"spec.requestRef key {ref.key!r} is not under {own!r}, the task's namespace's "
            "prefix (upload through the gateway, or under that prefix)",
        )
    return None


def result_ref_refusal(
    ref: PayloadRef, bucket: str | None, prefix: str, namespace: str, uid: str
) -> str | None:
    """Why a worker's ``result_ref`` is refused (the message), or None if it names this
    task's result key in the configured bucket."""
    if bucket is None:
        return (
            f"the worker reported a stored result (s3://{ref.bucket}/{ref.key}) but this "
            f"operator has no object storage configured; to enable it, {ENABLE_HINT}"
        )
    wanted = result_key(prefix, namespace, uid)
    if ref.bucket != bucket or ref.key != wanted:
        return (
            f"the worker reported a stored result at s3://{ref.bucket}/{ref.key}; this "
            f"task's result may only be s3://{bucket}/{wanted}"
        )
    return None


def _under(key: str, folder: str) -> bool:
    """``key`` is inside ``folder`` (no ``..`` or empty segment that could escape it)."""
    if not key.startswith(folder) or len(key) == len(folder):
        return False
    return all(part not in ("", ".", "..") for part in key[len(folder) :].split("/"))


@dataclass(frozen=True)
class ObjectKey:
    """Whose a key under the prefix is: a task's result (by uid) or an upload."""

    namespace: str
    kind: Literal["result", "upload"]
    #: The task's uid for a result; the upload's id for an upload.
    name: str


def parse_key(prefix: str, key: str) -> ObjectKey | None:
    """The owner of a key the project wrote, or None for anything else (left alone)."""
    if not key.startswith(prefix):
        return None
    parts = key[len(prefix) :].split("/")
    if len(parts) != 3 or not all(parts):
        return None
    namespace, middle, last = parts
    if middle == _UPLOADS:
        return ObjectKey(namespace, "upload", last)
    if last == "result":
        return ObjectKey(namespace, "result", middle)
    return None


def is_upload(prefix: str, namespace: str, key: str) -> bool:
    """An uploaded request of ``namespace`` (deleted with the task that names it); a
    ``requestRef`` naming another task's result leaves that result to its own task."""
    parsed = parse_key(prefix, key)
    return parsed is not None and parsed.kind == "upload" and parsed.namespace == namespace


#: What the sweep does with one object (:func:`sweep_verdict`).
Verdict = Literal["keep", "delete", "ask-archive"]


def sweep_verdict(
    owner: ObjectKey | None,
    key: str,
    age_seconds: float,
    grace_seconds: float,
    *,
    serves: bool,
    live_uids: frozenset[str] | set[str],
    live_uploads: frozenset[str] | set[str],
) -> Verdict:
    """Whether an object under the prefix is an orphan to delete.

    Kept: anything not laid out as the project lays keys out, of a namespace this operator
    does not serve, younger than the grace, a result whose task lives, an upload a live
    task names. A result whose task is gone may still back an archived row: with the
    archive on, the caller asks it (``ask-archive``) before deleting."""
    if owner is None or not serves or age_seconds < grace_seconds:
        return "keep"
    if owner.kind == "result":
        return "keep" if owner.name in live_uids else "ask-archive"
    return "keep" if key in live_uploads else "delete"
