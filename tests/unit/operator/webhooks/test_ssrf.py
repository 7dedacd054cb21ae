"""Webhook target safety: address and name rules, pinning, allow lists, Retry-After."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from asynctask_operator.webhooks.ssrf import (
    PinnedResolver,
    ResolutionFailed,
    Target,
    TargetPolicy,
    UnsafeTarget,
    address_kind,
    name_kind,
    resolve_target,
    retry_after_seconds,
)
from tests.unit.operator.fakes import resolver

# target safety -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("::1", "loopback"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("169.254.10.1", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.251", "multicast"),
        ("ff02::1", "multicast"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12:3456::1", "private"),
        ("100.64.0.1", "shared"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("64:ff9b::a9fe:a9fe", "cloud metadata"),
        ("2002:7f00:1::", "loopback"),
        ("8.8.8.8", None),
        ("2606:4700:4700::1111", None),
    ],
)
def test_address_kinds(address: str, kind: str | None) -> None:
    assert address_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address", ["240.0.0.1", "198.18.0.1", "192.0.2.1", "2001:db8::1", "255.255.255.255", "100::1"]
)
def test_reserved_and_documentation_ranges_are_refused(address: str) -> None:
    assert address_kind(ipaddress.ip_address(address)) in {"private", "non-global"}


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("localhost", True),
        ("api.localhost", True),
        ("kubernetes", True),
        ("metadata", True),
        ("receiver.team-a.svc", True),
        ("receiver.team-a.svc.cluster.local", True),
        ("kubernetes.default.svc.cluster.local.", True),
        ("x.cluster.local", True),
        ("printer.local", True),
        ("metadata.google.internal", True),
        ("nas.home.arpa", True),
        ("2130706433", True),
        ("hooks.example.com", False),
        ("HOOKS.Example.COM.", False),
    ],
)
def test_host_names(host: str, refused: bool) -> None:
    assert (name_kind(host) is not None) is refused


async def test_public_targets_are_resolved_once_and_pinned() -> None:
    calls: list[str] = []
    target = await resolve_target(
        "Hooks.Example.com.",
        443,
        TargetPolicy(),
        resolver({"hooks.example.com": ["93.184.216.34"]}, calls),
    )
    assert target == Target("hooks.example.com", 443, ("93.184.216.34",))
    assert calls == ["hooks.example.com"]
    pinned = await PinnedResolver(target).resolve("hooks.example.com", 443)
    assert [(r["hostname"], r["host"], r["port"]) for r in pinned] == [
        ("hooks.example.com", "93.184.216.34", 443)
    ]
    with pytest.raises(OSError, match=r"only 'hooks\.example\.com'"):
        await PinnedResolver(target).resolve("elsewhere.example.com", 443)


@pytest.mark.parametrize(
    ("host", "answers", "reason"),
    [
        ("rebind.example.com", ["169.254.169.254"], "cloud metadata"),
        ("loop.example.com", ["127.0.0.1"], "loopback"),
        ("mixed.example.com", ["93.184.216.34", "10.0.0.7"], "private"),
        ("six.example.com", ["::ffff:127.0.0.1"], "loopback"),
        ("zero.example.com", ["0.0.0.0"], "unspecified"),
        ("multi.example.com", ["239.1.1.1"], "multicast"),
        ("ll6.example.com", ["fe80::1%eth0"], "link-local"),
    ],
)
async def test_names_resolving_to_internal_addresses_are_refused(
    host: str, answers: list[str], reason: str
) -> None:
    with pytest.raises(UnsafeTarget, match=reason):
        await resolve_target(host, 443, TargetPolicy(), resolver({host: answers}))


@pytest.mark.parametrize(
    "host",
    [
        "kubernetes",
        "receiver.ns.svc.cluster.local",
        "receiver.ns.svc",
        "localhost",
        "metadata.google.internal",
    ],
)
async def test_cluster_internal_names_are_refused_before_resolving(host: str) -> None:
    calls: list[str] = []
    with pytest.raises(UnsafeTarget, match="name"):
        await resolve_target(host, 80, TargetPolicy(), resolver({host: ["93.184.216.34"]}, calls))
    assert calls == []


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("[::1]", "loopback"),
        ("169.254.169.254", "metadata"),
        ("10.0.0.1", "private"),
        ("0.0.0.0", "unspecified"),
    ],
)
async def test_ip_literals_are_checked_without_resolving(literal: str, reason: str) -> None:
    calls: list[str] = []
    with pytest.raises(UnsafeTarget, match=reason):
        await resolve_target(literal, 80, TargetPolicy(), resolver({}, calls))
    assert calls == []


async def test_resolution_failures_are_transient() -> None:
    with pytest.raises(ResolutionFailed, match="cannot resolve"):
        await resolve_target("nx.example.com", 443, TargetPolicy(), resolver({}))
    with pytest.raises(ResolutionFailed, match="no addresses"):
        await resolve_target(
            "empty.example.com", 443, TargetPolicy(), resolver({"empty.example.com": []})
        )

    async def slow(host: str, port: int) -> list[str]:
        await asyncio.sleep(10)
        return []

    started = time.monotonic()
    with pytest.raises(ResolutionFailed, match="longer than"):
        await resolve_target("slow.example.com", 443, TargetPolicy(), slow, time_limit=0.05)
    assert time.monotonic() - started < 1


async def test_cidr_allow_list_overrides_every_address_rule() -> None:
    policy = TargetPolicy.of(cidrs=["127.0.0.1/32", "169.254.169.254", "10.0.0.0/8"])
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "169.254.169.254", "10.9.8.7"):
        await resolve_target(address, 80, policy)
    with pytest.raises(UnsafeTarget, match="loopback"):
        await resolve_target("127.0.0.2", 80, policy)
    assert (
        await resolve_target(
            "in.example.com", 80, policy, resolver({"in.example.com": ["10.1.1.1"]})
        )
    ).addresses == ("10.1.1.1",)


async def test_host_allow_list_lifts_name_and_private_rules_only() -> None:
    policy = TargetPolicy.of(hosts=["receiver.team-a.svc.cluster.local", "*.corp.example"])
    table = {
        "receiver.team-a.svc.cluster.local": ["10.96.0.12"],
        "hooks.corp.example": ["fd00::5"],
        "corp.example": ["10.0.0.1"],
        "meta.corp.example": ["169.254.169.254"],
        "lo.corp.example": ["127.0.0.1"],
    }
    resolve = resolver(table)
    await resolve_target("receiver.team-a.svc.cluster.local", 80, policy, resolve)
    await resolve_target("hooks.corp.example", 80, policy, resolve)
    with pytest.raises(UnsafeTarget, match="private"):  # the wildcard does not cover the apex
        await resolve_target("corp.example", 80, policy, resolve)
    with pytest.raises(UnsafeTarget, match="metadata"):
        await resolve_target("meta.corp.example", 80, policy, resolve)
    with pytest.raises(UnsafeTarget, match="loopback"):
        await resolve_target("lo.corp.example", 80, policy, resolve)
    both = TargetPolicy.of(cidrs=["127.0.0.0/8"], hosts=["*.corp.example"])
    await resolve_target("lo.corp.example", 80, both, resolve)


def test_retry_after_header() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 100))
    assert 90 < (retry_after_seconds(future) or 0) <= 100
