"""The autoscaler's decisions, without a cluster or a broker: policy parsing, clamping,
the scale-down window, namespace scope, and the management API reader (a local server)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from aiohttp import web

from asynctask_operator.apiserver.kube import Deployment
from asynctask_operator.errors import Unavailable
from asynctask_operator.scaling.autoscaler import (
    Autoscaler,
    Depth,
    DepthReader,
    DepthSource,
    Problems,
    merge,
)
from asynctask_operator.scaling.policy import (
    BadAnnotations,
    Policy,
    Stabiliser,
    in_scope,
    parse_policy,
)
from asynctask_operator.settings import ScalingConfig

CLOSED_AMQP = "amqp://guest:guest@127.0.0.1:1/%2F"  # nothing listens on port 1


def settings(**overrides: Any) -> ScalingConfig:
    values: dict[str, Any] = dict(management_url=None, scale_down_window_seconds=120.0)
    return ScalingConfig(**(values | overrides))


# Policy and annotations ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("depth", "expected"),
    [(0, 0), (1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (9, 3), (1000, 5), (-1, 0)],
)
def test_desired_is_ceil_of_depth_over_target_clamped(depth: int, expected: int) -> None:
    assert Policy(("q",), min_replicas=0, max_replicas=5, target=4).desired(depth) == expected


def test_min_replicas_is_kept_when_idle_and_zero_means_scale_to_zero() -> None:
    assert Policy(("q",), min_replicas=2, max_replicas=5).desired(0) == 2
    assert Policy(("q",)).desired(0) == 0
    assert Policy(("q",)).desired(1) == 1


def test_defaults() -> None:
    assert parse_policy({"asynctask.dev/queues": "resize"}) == Policy(("resize",), 0, 10, 1)


def test_annotations_are_parsed() -> None:
    policy = parse_policy(
        {
            "asynctask.dev/queues": " resize , thumbs,resize,",
            "asynctask.dev/min-replicas": "1",
            "asynctask.dev/max-replicas": " 7 ",
            "asynctask.dev/target-messages-per-replica": "4",
        }
    )
    assert policy == Policy(("resize", "thumbs"), 1, 7, 4)


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        ({}, "asynctask.dev/queues is missing or empty"),
        ({"asynctask.dev/queues": " , "}, "asynctask.dev/queues is missing or empty"),
        ({"asynctask.dev/queues": "Resize,ok"}, "not a valid spec.queue name: Resize"),
        (
            {"asynctask.dev/queues": "q", "asynctask.dev/max-replicas": "ten"},
            "asynctask.dev/max-replicas='ten' is not a whole number",
        ),
        (
            {"asynctask.dev/queues": "q", "asynctask.dev/min-replicas": "-1"},
            "asynctask.dev/min-replicas='-1' is not a whole number",
        ),
        ({"asynctask.dev/queues": "q", "asynctask.dev/max-replicas": "0"}, "of at least 1"),
        (
            {"asynctask.dev/queues": "q", "asynctask.dev/target-messages-per-replica": "0"},
            "asynctask.dev/target-messages-per-replica='0' is not a whole number of at least 1",
        ),
        (
            {"asynctask.dev/queues": "q", "asynctask.dev/target-messages-per-replica": "1.5"},
            "is not a whole number",
        ),
        (
            {
                "asynctask.dev/queues": "q",
                "asynctask.dev/min-replicas": "3",
                "asynctask.dev/max-replicas": "2",
            },
            "asynctask.dev/min-replicas=3 is above asynctask.dev/max-replicas=2",
        ),
    ],
)
def test_bad_annotations_say_what_is_wrong(annotations: dict[str, str], message: str) -> None:
    with pytest.raises(BadAnnotations) as info:
        parse_policy(annotations)
    assert message in str(info.value)


# The scale-down window -------------------------------------------------------------------


def test_scale_up_is_immediate() -> None:
    s = Stabiliser(window=120, now=0, current=0)
    assert s.decide(1, desired=3, current=0) == (3, "scale up at once")


def test_scale_down_waits_for_the_window_and_uses_its_highest_count() -> None:
    s = Stabiliser(window=10, now=0, current=0)
    assert s.decide(0, desired=4, current=0) == (4, "scale up at once")
    assert s.decide(1, desired=4, current=4) is None
    assert s.decide(2, desired=2, current=4) is None  # 4 was wanted 1 s ago
    assert s.decide(5, desired=0, current=4) is None
    assert s.decide(11, desired=0, current=4) is None  # 4 at t=1 is still inside [1, 11]
    decision = s.decide(11.5, desired=0, current=4)
    assert decision is not None and decision[0] == 2  # the highest count wanted since 1.5
    assert "highest count wanted over the last 10s" in decision[1]
    assert s.decide(11.9, desired=0, current=2) is None  # 2 at t=2 is still in the window
    assert s.decide(12.5, desired=0, current=2) == (0, decision[1])


def test_a_short_lull_does_not_scale_down() -> None:
    s = Stabiliser(window=10, now=0, current=3)
    for t in range(1, 30):
        desired = 0 if t % 5 else 3  # idle most of the time, a little work every 5 s
        assert s.decide(t, desired, current=3) is None


def test_the_window_starts_with_the_replicas_found() -> None:
    """A restarted operator must not cut running workers before a whole window."""
    s = Stabiliser(window=10, now=100, current=5)
    assert s.decide(101, desired=0, current=5) is None
    assert s.decide(109, desired=0, current=5) is None
    assert s.decide(110.5, desired=0, current=5) == (
        0,
        "the highest count wanted over the last 10s",
    )


def test_a_zero_window_scales_down_at_once() -> None:
    s = Stabiliser(window=0, now=0, current=4)
    assert s.decide(1, desired=1, current=4) == (1, "the highest count wanted over the last 0s")


def test_an_inexact_depth_scales_up_but_never_down() -> None:
    s = Stabiliser(window=5, now=0, current=3)
    assert s.decide(10, desired=0, current=3, exact=False) is None
    assert s.decide(20, desired=0, current=3, exact=False) is None
    assert s.decide(21, desired=6, current=3, exact=False) == (6, "scale up at once")
    # Once exact again, the window counts the inexact rounds as "wanted current".
    assert s.decide(22, desired=0, current=6) is None
    assert s.decide(27.5, desired=0, current=6) == (0, "the highest count wanted over the last 5s")


# Namespace scope and depth ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "patterns", "expected"),
    [
        ("anything", [], True),
        ("t-1234", ["t-*"], True),
        ("prod", ["t-*"], False),
        ("prod", ["t-*", "prod"], True),
        ("kube-system", ["!kube-*"], False),
        ("apps", ["!kube-*"], True),
        ("myapp-pr-1", ["myapp-*,!*-pr-*"], False),
        ("myapp-live", ["myapp-*,!*-pr-*"], True),
    ],
)
def test_namespace_patterns_follow_kopf(
    namespace: str, patterns: list[str], expected: bool
) -> None:
    assert in_scope(namespace, patterns) is expected


def test_merge_takes_live_ready_and_managed_unacked() -> None:
    assert merge(7, (2, 3)) == Depth(7, 3)  # the live ready count wins: no lag
    assert merge(7, None) == Depth(7, None)
    assert merge(None, (2, 3)) == Depth(2, 3)
    assert merge(None, None) is None


# The autoscaler's rounds, with fake depths and a fake Deployment API ---------------------


class FakeReader(DepthReader):
    def __init__(self, managed: bool = True) -> None:
        super().__init__(DepthSource(CLOSED_AMQP), Problems())
        self.managed = managed
        self.depths: dict[str, Depth | None] = {}
        self.fail: BaseException | None = None

    async def read(self, queues: Sequence[str]) -> dict[str, Depth | None]:
        if self.fail is not None:
            raise self.fail
        return {q: self.depths.get(q, Depth(0, 0)) for q in queues}


class FakeDeploymentApi:
    """Kube's Deployment calls: answers a listing, records the scale calls."""

    def __init__(self) -> None:
        self.listing: list[Deployment] = []
        self.listed: list[tuple[list[str | None], str]] = []
        self.scaled: list[tuple[str, int]] = []
        self.unavailable = False

    async def list_deployments(
        self, namespaces: Sequence[str | None], label_selector: str
    ) -> list[Deployment]:
        self.listed.append((list(namespaces), label_selector))
        if self.unavailable:
            raise Unavailable("503 ServiceUnavailable")
        return list(self.listing)

    async def scale_deployment(self, namespace: str, name: str, replicas: int) -> None:
        self.scaled.append((f"{namespace}/{name}", replicas))


class FakeScaler(Autoscaler):
    def __init__(self, config: ScalingConfig, namespaces: Sequence[str] = ()) -> None:
        self.fake_api = FakeDeploymentApi()
        super().__init__(config, CLOSED_AMQP, self.fake_api, namespaces)
        self.reader = FakeReader()

    @property
    def calls(self) -> list[tuple[str, int]]:
        return self.fake_api.scaled


def worker(
    name: str, queues: str, replicas: int = 0, namespace: str = "t-1", **annotations: str
) -> Deployment:
    notes = {"asynctask.dev/queues": queues}
    notes.update({f"asynctask.dev/{k.replace('_', '-')}": v for k, v in annotations.items()})
    return Deployment(namespace, name, replicas, notes)


def depths(**ready: int) -> Mapping[str, Depth]:
    return {q.replace("_", "-"): Depth(n, 0) for q, n in ready.items()}


async def test_a_round_scales_up_and_only_when_the_count_changes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "asynctask.operator.scaling")
    scaler = FakeScaler(settings())
    scaler.discover(
        [worker("resize", "resize,thumbs", max_replicas="4", target_messages_per_replica="3")],
        now=0,
    )
    scaler.reader.depths = {"resize": Depth(5, 2), "thumbs": Depth(1, 0)}  # type: ignore[attr-defined]
    await scaler.tick(1)
    assert scaler.calls == [("t-1/resize", 3)]  # ceil(8 / 3)
    await scaler.tick(2)
    await scaler.tick(3)
    assert scaler.calls == [("t-1/resize", 3)]  # unchanged: no more writes
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("scaling"))
    assert "scaling t-1/resize from 0 to 3 replicas: depth 8" in line
    assert "resize: 5 ready + 2 unacked; thumbs: 1 ready + 0 unacked" in line
    assert line.endswith("3 per replica, min 0, max 4; scale up at once")


async def test_a_round_scales_to_zero_after_the_window(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "asynctask.operator.scaling")
    scaler = FakeScaler(settings(scale_down_window_seconds=5))
    scaler.discover([worker("w", "q")], now=0)
    reader: FakeReader = scaler.reader  # type: ignore[assignment]
    reader.depths = dict(depths(q=2))
    await scaler.tick(1)
    reader.depths = dict(depths(q=0))
    for t in range(2, 7):
        await scaler.tick(t)
    assert scaler.calls == [("t-1/w", 2)]
    assert any(
        "wants 0 of its 2 replicas; holding until the scale-down window" in r.getMessage()
        for r in caplog.records
    )
    await scaler.tick(6.5)
    assert scaler.calls == [("t-1/w", 2), ("t-1/w", 0)]
    assert "the highest count wanted over the last 5s" in caplog.records[-1].getMessage()


async def test_without_unacked_counts_a_managed_reader_never_scales_down() -> None:
    scaler = FakeScaler(settings(scale_down_window_seconds=0))
    scaler.discover([worker("w", "q", replicas=3)], now=0)
    reader: FakeReader = scaler.reader  # type: ignore[assignment]
    reader.depths = {"q": Depth(0, None)}  # the management API did not answer
    await scaler.tick(10)
    assert scaler.calls == []
    reader.depths = {"q": Depth(5, None)}
    await scaler.tick(11)
    assert scaler.calls == [("t-1/w", 5)]  # scaling up needs no unacked count
    reader.managed = False  # ready-only mode: the ready count is the whole depth
    reader.depths = {"q": Depth(0, None)}
    await scaler.tick(12)
    assert scaler.calls == [("t-1/w", 5), ("t-1/w", 0)]


async def test_unknown_depth_leaves_the_deployment_alone() -> None:
    scaler = FakeScaler(settings(scale_down_window_seconds=0))
    scaler.discover([worker("w", "a,b", replicas=2)], now=0)
    scaler.reader.depths = {"a": Depth(9, 0), "b": None}  # type: ignore[attr-defined]
    await scaler.tick(1)
    assert scaler.calls == []


async def test_bad_annotations_are_logged_once_and_skipped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "asynctask.operator.scaling")
    scaler = FakeScaler(settings())
    bad = worker("bad", "q", max_replicas="lots")
    good = worker("good", "q", replicas=0)
    for t in range(3):
        scaler.discover([bad, good], now=t)
        await scaler.tick(t)
    errors = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in errors] == [
        "not autoscaling t-1/bad: asynctask.dev/max-replicas='lots' is not a whole number "
        "of at least 1"
    ]
    assert set(scaler.deployments) == {"t-1/good"}
    # Fixed: picked up at the next listing.
    scaler.discover([worker("bad", "q", max_replicas="3"), good], now=4)
    assert set(scaler.deployments) == {"t-1/bad", "t-1/good"}
    # Broken again: logged again, and the Deployment is dropped.
    scaler.discover([bad, good], now=5)
    assert set(scaler.deployments) == {"t-1/good"}
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_discovery_follows_the_listing_and_the_namespace_scope() -> None:
    scaler = FakeScaler(settings(), namespaces=["t-*"])
    scaler.discover([worker("a", "q"), worker("b", "q", namespace="prod")], now=0)
    assert set(scaler.deployments) == {"t-1/a"}
    scaler.discover([worker("a", "q", replicas=4, max_replicas="6")], now=1)
    assert scaler.deployments["t-1/a"].replicas == 4
    assert scaler.deployments["t-1/a"].policy.max_replicas == 6
    scaler.discover([], now=2)
    assert scaler.deployments == {}


async def test_the_loop_survives_failures(caplog: pytest.LogCaptureFixture) -> None:
    scaler = FakeScaler(settings(scale_interval_seconds=0.2))
    reader: FakeReader = scaler.reader  # type: ignore[assignment]
    reader.fail = RuntimeError("boom")
    scaler.fake_api.listing = [worker("w", "q")]
    task = asyncio.create_task(scaler.run())
    await asyncio.sleep(0.5)
    reader.fail = None
    reader.depths = dict(depths(q=1))
    await asyncio.sleep(0.5)
    task.cancel()
    await asyncio.wait([task])
    assert "autoscaling round failed" in caplog.text
    assert scaler.calls == [("t-1/w", 1)]
    # Listing is every 10 s, rounds every 0.2 s; cluster-wide: one LIST of all namespaces.
    assert scaler.fake_api.listed == [([None], "asynctask.dev/autoscale=true")]


async def test_plain_namespaces_are_listed_one_by_one_patterns_cluster_wide() -> None:
    plain = FakeScaler(settings(), namespaces=["team-a", "team-b"])
    await plain.list_deployments()
    assert plain.fake_api.listed[0][0] == ["team-a", "team-b"]
    patterned = FakeScaler(settings(), namespaces=["team-*"])
    patterned.fake_api.listing = [
        worker("w", "q", namespace="team-x"),
        worker("w", "q", namespace="other"),
    ]
    found = await patterned.list_deployments()
    assert patterned.fake_api.listed[0][0] == [None]
    assert found is not None
    patterned.discover(found, now=0)
    assert set(patterned.deployments) == {"team-x/w"}


# The management API reader, against a local HTTP server ----------------------------------


async def management_server(routes: dict[str, Any]) -> tuple[web.AppRunner, str, list[Any]]:
    seen: list[Any] = []

    async def queue(request: web.Request) -> web.Response:
        seen.append((request.path_qs, request.raw_path, request.headers.get("Authorization")))
        name = request.match_info["name"]
        if name not in routes:
            return web.json_response({"error": "Object Not Found"}, status=404)
        if routes[name] == "slow":
            await asyncio.sleep(1)
        return web.json_response(routes[name])

    app = web.Application()
    app.router.add_get("/api/queues/{vhost}/{name}", queue)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://guest:secret@127.0.0.1:{port}", seen


async def test_management_reader_counts_unacked_and_ready(caplog: pytest.LogCaptureFixture) -> None:
    runner, url, seen = await management_server(
        {
            "asynctask.tasks.busy": {"messages_ready": 4, "messages_unacknowledged": 3},
            "asynctask.tasks.fresh": {"name": "asynctask.tasks.fresh"},  # no statistics yet
        }
    )
    reader = DepthReader(DepthSource(CLOSED_AMQP, url, management_timeout_seconds=1), Problems())
    try:
        got = await reader.read(["busy", "fresh", "missing"])
        # No AMQP here (closed port): the management API's ready counts stand in.
        assert got == {"busy": Depth(4, 3), "fresh": Depth(0, 0), "missing": Depth(0, 0)}
        assert "cannot read queue depths over AMQP" in caplog.text
        paths = sorted(raw for _, raw, _ in seen)
        assert paths[0] == "/api/queues/%2F/asynctask.tasks.busy"
        assert {auth for _, _, auth in seen} == {"Basic Z3Vlc3Q6c2VjcmV0"}  # guest:secret
    finally:
        await reader.close()
        await runner.cleanup()


async def test_management_reader_failure_is_reported_and_unacked_unknown(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runner, url, _ = await management_server({"asynctask.tasks.q": "slow"})
    problems = Problems()
    reader = DepthReader(DepthSource(CLOSED_AMQP, url, management_timeout_seconds=0.3), problems)
    try:
        assert await reader.read(["q"]) == {"q": None}  # neither source answered
        assert "cannot read in-flight counts from the management API (TimeoutError" in (caplog.text)
        assert set(problems.current) == {"amqp", "management"}
    finally:
        await reader.close()
        await runner.cleanup()


async def test_an_apiserver_outage_is_told_as_every_calls_not_as_a_scaling_problem(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    scaler = FakeScaler(settings())
    scaler.fake_api.unavailable = True
    assert await scaler.list_deployments() is None and await scaler.list_deployments() is None
    assert scaler.outage.ongoing and not scaler.problems.current
    scaler.fake_api.unavailable = False
    assert await scaler.list_deployments() == [] and not scaler.outage.ongoing
    said = [(r.levelname, r.name, r.getMessage()) for r in caplog.records]
    assert [(level, name) for level, name, _ in said] == [
        ("WARNING", "asynctask.operator"),  # the one outage WARNING, with its cause
        ("INFO", "asynctask.operator"),  # and its end
    ]
    assert "503 ServiceUnavailable" in said[0][2]
