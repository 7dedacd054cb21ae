"""Prometheus metrics of one gateway process, on a registry of its own (tests and several
apps in one process never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "asynctask_gateway_requests",
            "HTTP requests answered, by route and status code.",
            ["method", "route", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "asynctask_gateway_request_seconds",
            "Time to the answer's headers (streams and waits: until they end).",
            ["method", "route"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )
        self.open_streams = Gauge(
            "asynctask_gateway_open_streams", "Event streams (SSE) open now.", registry=r
        )
        self.open_waits = Gauge(
            "asynctask_gateway_open_waits", "Long-polls (wait, Prefer: wait) open now.", registry=r
        )
        self.cache_tasks = Gauge(
            "asynctask_gateway_cache_tasks", "AsyncTasks held in the watch cache.", registry=r
        )
        self.watch_restarts = Counter(
            "asynctask_gateway_watch_restarts",
            "Watches started again: gone (410, listed again) or error (resumed).",
            ["reason"],
            registry=r,
        )
        self.reviews = Counter(
            "asynctask_gateway_reviews",
            "TokenReviews and SubjectAccessReviews, by kind and whether the cache answered.",
            ["kind", "cached"],
            registry=r,
        )
        self.limited = Counter(
            "asynctask_gateway_limited",
            "Requests refused with 429 by the per-caller limits.",
            ["kind"],
            registry=r,
        )

        self.payload_bytes = Counter(
            "asynctask_gateway_payload_bytes",
            "Payload bytes streamed to object storage (in) and from it to callers (out).",
            ["direction"],
            registry=r,
        )
        self.payload_mismatches = Counter(
            "asynctask_gateway_payload_checksum_mismatches",
            "Stored results whose bytes did not match their ref (the answer was cut off).",
            registry=r,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
