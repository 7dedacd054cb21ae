"""The task logic's face of large payloads: grants, the checks of references, deletions.

:class:`PayloadObjects` is built with or without a store (storage off). With one, every
publish of a task (first attempt, retry, re-publish after a restart) carries a fresh
:class:`PayloadGrant`: a presigned GET of ``spec.requestRef`` and a presigned PUT of the
task's result key, so workers hold no credentials and each URL opens one object. A
deleted task's objects go with it (its uploaded request, and its result unless the
history archive keeps it): a watch event, no finalizer.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

from pydantic import ValidationError

from asynctask_operator.errors import StoreError
from asynctask_operator.metrics import OperatorMetrics
from asynctask_operator.payloads import checks
from asynctask_operator.payloads.settings import PayloadConfig
from asynctask_operator.ports import PayloadStore
from asynctask_worker.messages import ErrorInfo, Phase, StatusMessage, utcnow
from asynctask_worker.payloads import PayloadGrant, PayloadRef, result_key

log = logging.getLogger("asynctask.operator")

#: How many deletions of deleted tasks' objects run at once.
DELETERS = 4


class PayloadObjects:
    def __init__(
        self,
        config: PayloadConfig,
        store: PayloadStore | None,
        metrics: OperatorMetrics,
        *,
        keep_results: bool = False,
    ) -> None:
        """``keep_results``: the history archive is on, so a deleted task's stored result
        stays for its archived row (the sweep drops it once the archive's retention has)."""
        self.config = config
        self.store = store if config.enabled else None
        self.metrics = metrics
        self.keep_results = keep_results
        # (namespace, uid, [(kind, key)]) of deleted tasks, for :meth:`deleting`
        self._deletions: asyncio.Queue[tuple[str, str, list[tuple[str, str]]]] = asyncio.Queue()

    @classmethod
    def off(cls, metrics: OperatorMetrics) -> PayloadObjects:
        """Storage off: every reference refused, no grants (the settings' defaults)."""
        return cls(PayloadConfig.model_construct(), None, metrics)

    @property
    def bucket(self) -> str | None:
        """The configured bucket, None when storage is off."""
        return self.config.bucket if self.store is not None else None

    def refusal(self, namespace: str, ref: PayloadRef | None) -> tuple[str, str] | None:
        """Why a task's ``spec.requestRef`` ends it in Error (reason, message), or None."""
        if ref is None:
            return None
        refused = checks.request_ref_refusal(ref, self.bucket, self.config.prefix, namespace)
        if refused is not None:
            self.metrics.payload_refused.labels(refused[0]).inc()
        return refused

    def too_large_hint(self) -> str:
        """What a RequestTooLarge message advises."""
        if self.store is None:
            return f"Pass large inputs by reference (e.g. a URL), or {checks.ENABLE_HINT}."
        return (
            "Upload it to object storage and create the task with spec.requestRef (the "
            "client and the gateway do this for you)."
        )

    async def grant(self, namespace: str, uid: str, ref: PayloadRef | None) -> PayloadGrant | None:
        """Presigned URLs for one publish of a task (None when storage is off). Raises the
        store's error if presigning fails: nothing is published then."""
        store, bucket = self.store, self.bucket
        if store is None or bucket is None:
            return None
        key = result_key(self.config.prefix, namespace, uid)
        try:
            request_url = None if ref is None else await store.presign("GET", ref.bucket, ref.key)
            result_url = await store.presign("PUT", bucket, key)
        except StoreError:
            self.metrics.payload_store_errors.inc()
            raise  # the publish is tried again (submitters, timers)
        grant = PayloadGrant(
            request_url=request_url,
            result_url=result_url,
            result_bucket=bucket,
            result_key=key,
            threshold_bytes=self.config.threshold_bytes,
            expires_at=utcnow() + timedelta(seconds=self.config.url_seconds),
        )
        self.metrics.payload_grants.inc()
        return grant

    def judge(self, namespace: str, uid: str, msg: StatusMessage) -> StatusMessage:
        """A worker's Succeeded with a ``result_ref`` that is not this task's result key
        becomes an Error ``ResultRefRefused`` (the ref is never written)."""
        ref = msg.result_ref
        if ref is None or msg.phase is not Phase.SUCCEEDED:
            return msg
        why = checks.result_ref_refusal(ref, self.bucket, self.config.prefix, namespace, uid)
        if why is None:
            return msg
        self.metrics.payload_refused.labels(checks.RESULT_REF_REFUSED).inc()
        log.warning("task %s/%s: %s", namespace, uid, why)
        error = ErrorInfo(reason=checks.RESULT_REF_REFUSED, message=why)
        return msg.model_copy(
            update={"phase": Phase.ERROR, "result_ref": None, "result": None, "error": error}
        )

    def deleted(self, namespace: str, uid: str, spec: Any, known: PayloadRef | None) -> None:
        """A task is gone (a watch event): delete its objects in the background, its
        uploaded request (``spec.requestRef`` of the deleted object, or ``known``, the one
        the operator held) and its result key. A request naming anything but an upload of
        its namespace (another task's result) is left to its owner; a failed delete is
        left to the sweep."""
        store, bucket = self.store, self.bucket
        if store is None or bucket is None:
            return
        keys: list[tuple[str, str]] = []
        ref = _request_ref(spec) or known
        if (
            ref is not None
            and ref.bucket == bucket
            and checks.is_upload(self.config.prefix, namespace, ref.key)
        ):
            keys.append(("request", ref.key))
        if not self.keep_results:
            keys.append(("result", result_key(self.config.prefix, namespace, uid)))
        if keys:
            self._deletions.put_nowait((namespace, uid, keys))

    async def deleting(self) -> None:
        """Delete what :meth:`deleted` queued, until cancelled (the operator runs
        :data:`DELETERS` of these: a mass deletion waits in a queue, not in tasks)."""
        while True:
            namespace, uid, keys = await self._deletions.get()
            try:
                await self._delete(namespace, uid, keys)
            finally:
                self._deletions.task_done()

    async def _delete(self, namespace: str, uid: str, keys: list[tuple[str, str]]) -> None:
        store, bucket = self.store, self.bucket
        assert store is not None and bucket is not None
        for kind, key in keys:
            try:
                await store.delete(bucket, key)
            except Exception as exc:  # noqa: BLE001 - the sweep deletes it later
                self.metrics.payload_store_errors.inc()
                log.warning(
                    "task %s/%s was deleted but its %s object s3://%s/%s was not (%s); "
                    "the sweep will delete it",
                    namespace,
                    uid,
                    kind,
                    bucket,
                    key,
                    exc,
                )
            else:
                self.metrics.payload_deleted.labels(kind).inc()

    async def drain(self) -> None:
        """Wait until every queued deletion was tried (tests)."""
        await self._deletions.join()


def _request_ref(spec: Any) -> PayloadRef | None:
    raw = spec.get("requestRef") if isinstance(spec, dict) else None
    if raw is None:
        return None
    try:
        return PayloadRef.model_validate(raw)
    except ValidationError:
        return None
