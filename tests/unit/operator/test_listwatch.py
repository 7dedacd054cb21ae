"""The list+watch loop's decisions: pages, resuming, 410 Gone, failures.

A scripted apiserver stands in here for the loop's logic alone; the loop runs against the
real apiserver in every e2e test (the operator's and the gateway's watch).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from kubernetes import client as k8s_client

from asynctask_operator.apiserver import listwatch
from asynctask_operator.apiserver.apiclient import ApiClient, ApiError
from asynctask_operator.apiserver.listwatch import Kind, ListWatch, Scope
from asynctask_operator.errors import Unavailable


def item(uid: str, version: str) -> dict[str, Any]:
    return {"metadata": {"uid": uid, "namespace": "ns", "resourceVersion": version}}


class Scripted(ApiClient):
    """Lists and watches answered from scripts; each watch call takes the next script."""

    def __init__(self, pages: list[dict[str, Any]], watches: list[list[Any]]) -> None:
        super().__init__(k8s_client.Configuration(host="http://127.0.0.1:9"))
        self.pages, self.watches = pages, watches
        self.lists: list[dict[str, str]] = []
        self.watched_from: list[str] = []

    async def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, **_: Any
    ) -> dict[str, Any]:
        self.lists.append(dict(params or {}))
        return self.pages[(len(self.lists) - 1) % len(self.pages)]

    async def watch(
        self,
        path: str,
        params: Mapping[str, str],
        read_timeout: float,
        on_open: Callable[[], None] = lambda: None,
    ) -> AsyncIterator[dict[str, Any]]:
        self.watched_from.append(params["resourceVersion"])
        if not self.watches:
            on_open()
            await asyncio.Event().wait()  # a quiet watch, until cancelled
        script = self.watches.pop(0)
        if not (script and isinstance(script[0], Exception)):
            on_open()  # the request was accepted
        for event in script:
            if isinstance(event, Exception):
                raise event
            yield event


class Sink:
    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def event(self, kind: Kind, obj: dict[str, Any]) -> None:
        self.log.append((kind, obj["metadata"]["uid"]))

    def listed(self, scope: Scope, uids: set[str]) -> None:
        self.log.append(("listed", scope, sorted(uids)))


_yield = asyncio.sleep  # before a test replaces it


async def run_until(lw: ListWatch, done: Any) -> None:
    task = asyncio.create_task(lw.run())
    for _ in range(200):
        await _yield(0)
        if done():
            break
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_pages_then_a_watch_from_the_lists_version_resumed_after_it_ends() -> None:
    pages = [
        {"items": [item("a", "5")], "metadata": {"continue": "c1", "resourceVersion": "9"}},
        {"items": [item("b", "7")], "metadata": {"resourceVersion": "9"}},
    ]
    watches = [
        [
            {"type": "ADDED", "object": item("c", "10")},
            {"type": "BOOKMARK", "object": item("", "12")},
        ],
        [{"type": "DELETED", "object": item("a", "13")}],
    ]
    api, sink = Scripted(pages, watches), Sink()
    await run_until(
        ListWatch(api, lambda s: "/x", [None], sink), lambda: len(api.watched_from) == 3
    )
    assert all(p["limit"] == str(listwatch.PAGE) for p in api.lists)
    assert [p.get("continue") for p in api.lists] == [None, "c1"]
    assert sink.log == [
        ("LISTED", "a"),
        ("LISTED", "b"),
        ("listed", None, ["a", "b"]),
        ("ADDED", "c"),
        ("DELETED", "a"),
    ]
    assert api.watched_from == ["9", "12", "13"]  # a bookmark moves the resume point


async def test_410_gone_lists_again(monkeypatch: pytest.MonkeyPatch) -> None:
    pages = [{"items": [item("a", "5")], "metadata": {"resourceVersion": "9"}}]
    gone = {"type": "ERROR", "object": {"code": 410, "reason": "Expired"}}
    restarts: list[str] = []
    api, sink = Scripted(pages, [[gone]]), Sink()
    lw = ListWatch(api, lambda s: "/x", ["ns"], sink, on_restart=restarts.append)
    await run_until(lw, lambda: len(api.lists) == 2 and len(api.watched_from) == 2)
    assert restarts == ["gone"]
    assert [entry for entry in sink.log if entry[0] != "LISTED"] == [
        ("listed", "ns", ["a"]),
        ("listed", "ns", ["a"]),
    ]


async def test_a_failure_is_retried_after_a_pause_from_where_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        await _yield(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    pages = [{"items": [], "metadata": {"resourceVersion": "9"}}]
    watches: list[list[Any]] = [
        [ConnectionResetError("reset")],
        [ApiError(503, {"message": "unavailable"})],
        [ApiError(500, {})],
        [ApiError(500, {})],
        [ApiError(500, {})],
        [ApiError(500, {})],
    ]
    restarts: list[str] = []
    api, sink = Scripted(pages, watches), Sink()
    lw = ListWatch(api, lambda s: "/x", [None], sink, on_restart=restarts.append)
    await run_until(lw, lambda: len(api.watched_from) == 7)
    assert api.watched_from == ["9"] * 7 and len(api.lists) == 1  # never listed again
    assert restarts == ["error"] * 6
    assert pauses == [1.0, 2.0, 4.0, 8.0, 16.0, listwatch.MAX_BACKOFF_SECONDS]


class Report:
    """An :class:`listwatch.OutageReport` that records what it is told."""

    def __init__(self) -> None:
        self.told: list[str] = []

    def failed(self, exc: Unavailable) -> None:
        self.told.append(f"failed {exc}")

    def answered(self) -> None:
        self.told.append("answered")


async def test_an_outage_is_told_to_the_report_and_what_is_not_one_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def sleep(seconds: float) -> None:
        await _yield(0)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    pages = [{"items": [], "metadata": {"resourceVersion": "9"}}]
    watches: list[list[Any]] = [
        [ConnectionRefusedError(111, "Connection refused")],
        [ApiError(503, {"reason": "ServiceUnavailable"})],
        [ApiError(403, {"reason": "Forbidden"})],
    ]
    report, api = Report(), Scripted(pages, watches)
    lw = ListWatch(api, lambda s: "/x", [None], Sink(), outage=report)
    await run_until(lw, lambda: len(api.watched_from) == 4)
    assert report.told == [
        "answered",  # the list
        "failed ConnectionRefusedError: [Errno 111] Connection refused",
        "failed 503 ServiceUnavailable",
        "answered",  # the fourth watch, accepted
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "403 Forbidden" in warnings[0]  # not an outage: logged
