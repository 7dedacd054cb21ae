"""Authentication and authorization the Kubernetes way, as k8s.io/apiserver delegates them.

* Who: the caller's bearer token goes to a TokenReview (with the configured audiences, so a
  token minted for the gateway can be refused by the apiserver itself). The token is never
  forwarded anywhere else, and never read from a URL.
* May they: a SubjectAccessReview for that user for each (resource, verb) the call needs:
  ``asynctasks`` and ``asynctaskschedules`` in the namespace, ``asyncqueues`` cluster-wide
  (namespace ""). The gateway then acts as its own ServiceAccount.

Answers are cached for ``auth_cache_seconds`` (k8s.io/apiserver's default is 10 s for both):
tokens by their SHA-256 (the token itself is never kept), decisions by (user, groups, verb,
namespace, name). A failed authentication is never cached, so a fixed token works at once.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from asynctask_gateway.kube import GROUP, PLURAL, ApiError, Kube
from asynctask_gateway.metrics import Metrics
from asynctask_gateway.problems import Problem
from asynctask_gateway.routes import Access

ANONYMOUS = "system:anonymous"
T = TypeVar("T")


@dataclass(frozen=True)
class User:
    name: str
    uid: str = ""
    groups: tuple[str, ...] = ()
    extra: tuple[tuple[str, tuple[str, ...]], ...] = field(default=())


class TTLCache(Generic[T]):
    """A small dict whose entries expire; bounded so a flood of tokens cannot grow it."""

    def __init__(self, ttl: float, max_size: int = 10_000) -> None:
        self.ttl, self.max_size = ttl, max_size
        self._items: dict[Any, tuple[float, T]] = {}

    def get(self, key: Any) -> T | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] < time.monotonic():
            del self._items[key]
            return None
        return item[1]

    def put(self, key: Any, value: T) -> None:
        if self.ttl <= 0:
            return
        if len(self._items) >= self.max_size:
            now = time.monotonic()
            self._items = {k: v for k, v in self._items.items() if v[0] >= now}
            if len(self._items) >= self.max_size:
                self._items.clear()
        self._items[key] = (time.monotonic() + self.ttl, value)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header (``None`` when absent)."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem(
            401,
            "Unauthorized",
            "the Authorization header must be 'Bearer <token>'",
            headers={"WWW-Authenticate": 'Bearer realm="asynctask"'},
        )
    return token.strip()


def unauthorized(detail: str) -> Problem:
    return Problem(
        401, "Unauthorized", detail, headers={"WWW-Authenticate": 'Bearer realm="asynctask"'}
    )


class Authenticator:
    def __init__(
        self,
        kube: Kube,
        metrics: Metrics,
        *,
        audiences: Iterable[str] = (),
        allow_anonymous: bool = False,
        cache_seconds: float = 10.0,
    ) -> None:
        self.kube, self.metrics = kube, metrics
        self.audiences = list(audiences)
        self.allow_anonymous = allow_anonymous
        self._users: TTLCache[User] = TTLCache(cache_seconds)
        self._decisions: TTLCache[bool] = TTLCache(cache_seconds)

    async def authenticate(self, authorization: str | None) -> User:
        token = bearer_token(authorization)
        if token is None:
            if self.allow_anonymous:
                return User(ANONYMOUS, groups=("system:unauthenticated",))
            raise unauthorized("a bearer token is required (Authorization: Bearer <token>)")
        digest = hashlib.sha256(token.encode()).hexdigest()
        user = self._users.get(digest)
        self.metrics.reviews.labels(kind="token", cached=str(user is not None).lower()).inc()
        if user is None:
            user = await self._review_token(token)
            self._users.put(digest, user)
        return user

    async def _review_token(self, token: str) -> User:
        spec: dict[str, Any] = {"token": token}
        if self.audiences:
            spec["audiences"] = self.audiences
        answer = await self.kube.request(
            "POST",
            "/apis/authentication.k8s.io/v1/tokenreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": spec},
        )
        status = answer.get("status") or {}
        if not status.get("authenticated"):
            raise unauthorized("the token was not accepted")
        info = status.get("user") or {}
        extra = tuple(sorted((k, tuple(v)) for k, v in (info.get("extra") or {}).items()))
        return User(
            str(info.get("username") or ""),
            str(info.get("uid") or ""),
            tuple(info.get("groups") or ()),
            extra,
        )

    async def authorize(
        self, user: User, access: Iterable[Access], namespace: str, name: str = ""
    ) -> None:
        """Raise 403 unless ``user`` may do every (resource, verb, named) of ``access``
        (``named``: on the object ``name``); ``namespace`` "" for a cluster-scoped one."""
        for resource, verb, named in access:
            target = name if named else ""
            if not await self._allowed(user, verb, namespace, target, resource):
                what = f"{resource}.{GROUP}" + (f' "{target}"' if target else "")
                where = f' in the namespace "{namespace}"' if namespace else " (cluster-wide)"
                raise Problem(403, "Forbidden", f"{user.name} cannot {verb} {what}{where}")

    async def allowed(self, user: User, verb: str, namespace: str, name: str) -> bool:
        """Whether ``user`` may ``verb`` the task ``name`` (a bulk action asks per object);
        raises 503 when the review cannot be made."""
        return await self._allowed(user, verb, namespace, name, PLURAL)

    async def _allowed(
        self, user: User, verb: str, namespace: str, name: str, resource: str
    ) -> bool:
        key = (user.name, user.uid, user.groups, user.extra, resource, verb, namespace, name)
        allowed = self._decisions.get(key)
        self.metrics.reviews.labels(kind="access", cached=str(allowed is not None).lower()).inc()
        if allowed is not None:
            return allowed
        spec: dict[str, Any] = {
            "user": user.name,
            "groups": list(user.groups),
            "resourceAttributes": {
                "group": GROUP,
                "resource": resource,
                "verb": verb,
                "namespace": namespace,
                "name": name,
            },
        }
        if user.uid:
            spec["uid"] = user.uid
        if user.extra:
            spec["extra"] = {k: list(v) for k, v in user.extra}
        try:
            answer = await self.kube.request(
                "POST",
                "/apis/authorization.k8s.io/v1/subjectaccessreviews",
                body={
                    "apiVersion": "authorization.k8s.io/v1",
                    "kind": "SubjectAccessReview",
                    "spec": spec,
                },
            )
        except ApiError as exc:
            raise Problem(
                503, "AuthorizationUnavailable", f"the access review failed: {exc.message}"
            ) from exc
        allowed = bool((answer.get("status") or {}).get("allowed"))
        self._decisions.put(key, allowed)
        return allowed
