"""Where webhooks may go: refuse internal targets (SSRF), pin the addresses checked, POST.

A webhook URL is written by whoever may create an AsyncTask, but the operator sends the
request from inside the cluster. So before every attempt the target's host is resolved and
each address is checked; the connection then goes to exactly those addresses (the resolver
handed to aiohttp returns them and nothing else), so a DNS answer that changes between the
check and the connection (DNS rebinding) cannot redirect it. The URL's host name is still
sent as the Host header and as TLS SNI, and certificates are verified against it. :func:`post`
sends the request: no redirects followed, no proxy taken from the environment, one time limit.

Refused unless an operator-level allow-list says otherwise:

* names: ``localhost`` and ``*.localhost``, single-label names (``kubernetes``, ``metadata``),
  ``*.svc``, ``*.cluster.local`` and the special-use ``*.local``, ``*.internal`` and
  ``*.home.arpa``;
* addresses: unspecified (``0.0.0.0``, ``::``), loopback, link-local (``169.254.0.0/16``,
  ``fe80::/10``, including the cloud metadata address ``169.254.169.254``), multicast, private
  (RFC 1918, ``fc00::/7``), shared (``100.64.0.0/10``) and every other non-global range. IPv6
  forms that embed an IPv4 address (``::ffff:a.b.c.d``, ``64:ff9b::/96``, ``2002::/16``) are
  judged by that address. A name is refused if any of its addresses is.

Allow-lists (:class:`TargetPolicy`): an address inside ``allowed_networks`` is accepted
whatever its kind. A host in ``allowed_hosts`` (exact, or ``*.example.com`` for its
subdomains) skips the name rules and may resolve to private or shared addresses; loopback,
link-local, unspecified and multicast addresses still need ``allowed_networks``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses``: how names are resolved (injectable for tests).
Resolve = Callable[[str, int], Awaitable[list[str]]]

INTERNAL_SUFFIXES = (".svc", ".cluster.local", ".local", ".internal", ".localhost", ".home.arpa")
#: Kinds of address a host allow-list entry may reach (the rest need a CIDR allow-list).
HOST_LIFTS = frozenset({"private", "shared", "non-global"})
#: HTTP statuses worth retrying (and 5xx); any other non-2xx status, redirects included, is final.
RETRY_STATUSES = frozenset({408, 409, 425, 429})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)


class UnsafeTarget(Exception):
    """The target is refused by the policy. Permanent: never retried."""


class ResolutionFailed(Exception):
    """The host could not be resolved now (may be transient: retried)."""


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def address_kind(ip: IPAddress) -> str | None:
    """Why an address is refused by default (``loopback``, ``link-local``...), or None."""
    inner = embedded_ipv4(ip)
    if inner is not None:
        return address_kind(inner)
    if ip in _METADATA:
        return "cloud metadata"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private:
        return "private"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.IPv4Network("100.64.0.0/10"):
        return "shared"
    if not ip.is_global or ip.is_reserved:
        return "non-global"
    return None


def normalise_host(host: str) -> str:
    return host.strip().rstrip(".").lower()


def name_kind(host: str) -> str | None:
    """Why a host name is refused by default, or None (IP literals are not judged here)."""
    host = normalise_host(host)
    if host == "localhost":
        return "loopback name"
    if "." not in host:
        return "single-label (cluster-internal) name"
    if host.endswith(INTERNAL_SUFFIXES):
        return "cluster-internal or special-use name"
    return None


def parse_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@dataclass(frozen=True)
class TargetPolicy:
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_hosts: tuple[str, ...] = ()

    @classmethod
    def of(cls, cidrs: Iterable[str] = (), hosts: Iterable[str] = ()) -> TargetPolicy:
        return cls(
            tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs),
            tuple(normalise_host(h) for h in hosts),
        )

    def host_allowed(self, host: str) -> bool:
        host = normalise_host(host)
        for entry in self.allowed_hosts:
            if entry.startswith("*.") and host.endswith(entry[1:]):
                return True
            if host == entry:
                return True
        return False

    def network_allowed(self, ip: IPAddress) -> bool:
        candidates: list[IPAddress] = [ip]
        inner = embedded_ipv4(ip)
        if inner is not None:
            candidates.append(inner)
        return any(
            c in net
            for c in candidates
            for net in self.allowed_networks
            if c.version == net.version
        )

    def check_address(self, ip: IPAddress, *, trusted_host: bool = False) -> None:
        """Raise :class:`UnsafeTarget` unless ``ip`` may be connected to."""
        kind = address_kind(ip)
        if kind is None or self.network_allowed(ip):
            return
        if trusted_host and kind in HOST_LIFTS:
            return
        raise UnsafeTarget(f"{ip} is a {kind} address")

    def check_name(self, host: str) -> None:
        """Raise :class:`UnsafeTarget` if the name itself is refused (and not allowed)."""
        kind = name_kind(host)
        if kind is not None and not self.host_allowed(host):
            raise UnsafeTarget(f"{normalise_host(host)!r} is a {kind}")


@dataclass(frozen=True)
class Target:
    """A checked destination: connect to ``addresses`` only, naming ``host``."""

    host: str
    port: int
    addresses: tuple[str, ...]


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_target(
    host: str,
    port: int,
    policy: TargetPolicy,
    resolve: Resolve = system_resolve,
    time_limit: float = 5.0,
) -> Target:
    """Check ``host`` and every address it resolves to; raise :class:`UnsafeTarget` (refused)
    or :class:`ResolutionFailed` (no answer within ``time_limit``, or none at all)."""
    host = normalise_host(host)
    if not host:
        raise UnsafeTarget("the URL has no host")
    trusted = policy.host_allowed(host)
    literal = parse_ip(host)
    if literal is not None:
        policy.check_address(literal, trusted_host=trusted)
        return Target(host, port, (str(literal),))
    policy.check_name(host)
    try:
        async with asyncio.timeout(time_limit):
            addresses = await resolve(host, port)
    except TimeoutError as exc:
        raise ResolutionFailed(f"resolving {host} took longer than {time_limit:g}s") from exc
    except OSError as exc:
        raise ResolutionFailed(f"cannot resolve {host}: {exc}") from exc
    if not addresses:
        raise ResolutionFailed(f"{host} has no addresses")
    for address in addresses:
        ip = parse_ip(address.split("%", 1)[0])
        if ip is None:
            raise UnsafeTarget(f"{host} resolved to something that is not an address: {address!r}")
        try:
            policy.check_address(ip, trusted_host=trusted)
        except UnsafeTarget as exc:
            raise UnsafeTarget(f"{host} resolves to {exc}") from None
    return Target(host, port, tuple(addresses))


class PinnedResolver(AbstractResolver):
    """An aiohttp resolver that answers with the checked addresses of one target only."""

    def __init__(self, target: Target) -> None:
        self.target = target

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if normalise_host(host) != self.target.host:
            raise OSError(f"refusing to resolve {host!r}: only {self.target.host!r} was checked")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port or self.target.port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.target.addresses
        ]

    async def close(self) -> None:
        return None


class WebhookError(Exception):
    """The request was not accepted: refused before sending, or a non-2xx response."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def redact(url: URL) -> str:
    """The URL without its query and fragment (which may carry tokens), for logs and status."""
    return str(url.with_query(None).with_fragment(None))


async def post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    policy: TargetPolicy,
    *,
    resolve: Resolve = system_resolve,
    time_limit: float = 10.0,
    require_https: bool = False,
) -> int:
    """POST ``body`` to a checked, pinned target; return the (2xx) status.

    No redirects are followed, no proxy is taken from the environment, and the whole
    request, resolution included, must end within ``time_limit``. Raises
    :class:`UnsafeTarget`, :class:`ResolutionFailed`, :class:`WebhookError` (non-2xx:
    ``retryable`` for 408, 409, 425, 429 and 5xx), or aiohttp's and the socket's errors.
    """
    parsed = URL(url)
    if parsed.scheme not in ("http", "https") or (require_https and parsed.scheme != "https"):
        allowed = "https://" if require_https else "http:// and https://"
        raise WebhookError(f"refused: only {allowed} URLs are allowed", retryable=False)
    async with asyncio.timeout(time_limit):
        target = await resolve_target(
            parsed.raw_host or "", parsed.port or 0, policy, resolve, time_limit
        )
        connector = aiohttp.TCPConnector(
            resolver=PinnedResolver(target), use_dns_cache=False, force_close=True
        )
        async with (
            aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                timeout=aiohttp.ClientTimeout(total=time_limit),
            ) as session,
            session.post(
                parsed, data=body, headers=dict(headers), allow_redirects=False
            ) as response,
        ):
            if 200 <= response.status < 300:
                return response.status
            detail = (await response.content.read(200)).decode(errors="replace").strip()
    error = f"HTTP {response.status} from {redact(parsed)}" + (f": {detail}" if detail else "")
    if 300 <= response.status < 400:
        error += " (redirects are not followed)"
    raise WebhookError(
        error,
        status=response.status,
        retryable=response.status >= 500 or response.status in RETRY_STATUSES,
        retry_after=retry_after_seconds(response.headers.get("Retry-After")),
    )
