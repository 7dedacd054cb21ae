"""One delivery attempt of a webhook event: sign it, check and pin the target, POST it.

Whatever goes wrong becomes a :class:`retry.Failure` that says whether a retry can
help: a refused target or a 4xx cannot, a time-out or a refused connection can.
"""

from __future__ import annotations

import asyncio
import time

import aiohttp

from asynctask_operator.settings import WebhookConfig
from asynctask_operator.spec import WebhookSpec
from asynctask_operator.webhooks import signing
from asynctask_operator.webhooks.cloudevents import CONTENT_TYPE
from asynctask_operator.webhooks.retry import Failure
from asynctask_operator.webhooks.secret_cache import SecretCache, SecretLoader
from asynctask_operator.webhooks.ssrf import (
    ResolutionFailed,
    Resolve,
    TargetPolicy,
    UnsafeTarget,
    WebhookError,
    post,
    system_resolve,
)
from asynctask_worker.messages import TaskRef

USER_AGENT = "asynctask-operator"
ATTEMPT_HEADER = "X-AsyncTask-Delivery-Attempt"


class WebhookSender:
    def __init__(
        self,
        config: WebhookConfig,
        load_secret: SecretLoader | None = None,
        resolve: Resolve = system_resolve,
    ) -> None:
        self.config = config
        self.policy = TargetPolicy.of(config.allowed_cidrs, config.allowed_hosts)
        self.secrets = SecretCache(load_secret, config.secret_cache_seconds)
        self._resolve = resolve

    async def attempt(
        self, ref: TaskRef, webhook: WebhookSpec, body: bytes, attempt: int
    ) -> Failure | None:
        """One attempt, within the time limit: None if it succeeded, else what went wrong."""
        limit = self.config.timeout_seconds
        try:
            async with asyncio.timeout(limit):
                await self._send(ref, webhook, body, attempt)
        except UnsafeTarget as exc:
            return Failure(f"refused: {exc}", retryable=False)
        except WebhookError as exc:
            return Failure(str(exc), exc.retryable, exc.retry_after)
        except TimeoutError:
            return Failure(f"timed out after {limit:g}s", retryable=True)
        except (aiohttp.ClientError, OSError, ResolutionFailed) as exc:
            return Failure(f"{type(exc).__name__}: {exc}", retryable=True)
        return None

    async def _send(self, ref: TaskRef, webhook: WebhookSpec, body: bytes, attempt: int) -> None:
        headers = {
            "Content-Type": CONTENT_TYPE,
            "User-Agent": USER_AGENT,
            ATTEMPT_HEADER: str(attempt),
        }
        secret = webhook.secret_ref
        if secret is not None:
            key = await self.secrets.get(ref.namespace, secret)
            headers.update(signing.signature_headers(key, body))
        else:
            headers[signing.TIMESTAMP_HEADER] = str(int(time.time()))
        try:
            await post(
                webhook.url,
                body,
                headers,
                self.policy,
                resolve=self._resolve,
                time_limit=self.config.timeout_seconds,
                require_https=self.config.require_https,
            )
        except WebhookError as exc:
            if exc.status in (401, 403) and secret is not None:  # the key may have changed
                self.secrets.drop(ref.namespace, secret)
            raise
