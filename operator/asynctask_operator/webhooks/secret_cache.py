"""Webhook signing keys read from Secrets, reused for a while (one GET per key per period).

The loader is injected (``Kube.read_secret_key`` in the operator), so this module makes no
API call of its own. A receiver answering 401 or 403 may mean the key was rotated: the
dispatcher then drops the cached key with :meth:`SecretCache.drop`.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from asynctask_operator.limits import SECRET_CACHE_ENTRIES
from asynctask_operator.spec import SecretKeyRef
from asynctask_operator.webhooks.ssrf import WebhookError

#: ``(namespace, name, key) -> bytes``: the raw value of one key of a Secret.
SecretLoader = Callable[[str, str, str], Awaitable[bytes]]


class SecretCache:
    def __init__(self, load: SecretLoader | None, ttl_seconds: float) -> None:
        self._load = load
        self._ttl = ttl_seconds
        self._keys: dict[tuple[str, str, str], tuple[bytes, float]] = {}

    async def get(self, namespace: str, ref: SecretKeyRef) -> bytes:
        """The key's value; a problem is a :class:`WebhookError` saying which key."""
        where = f"key {ref.key!r} of Secret {namespace}/{ref.name}"
        if self._load is None:
            raise WebhookError(f"cannot sign: no secret loader for {where}", retryable=False)
        cache_key = (namespace, ref.name, ref.key)
        now = time.monotonic()
        cached = self._keys.get(cache_key)
        if cached is not None and cached[1] > now:
            return cached[0]
        try:
            key = await self._load(namespace, ref.name, ref.key)
        except Exception as exc:
            raise WebhookError(f"cannot read {where}: {exc}") from exc
        if not key:
            raise WebhookError(f"{where} is empty")
        if len(self._keys) >= SECRET_CACHE_ENTRIES:  # keep the cache small: drop what expired
            self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
        self._keys[cache_key] = (key, now + self._ttl)
        return key

    def drop(self, namespace: str, ref: SecretKeyRef) -> None:
        self._keys.pop((namespace, ref.name, ref.key), None)
