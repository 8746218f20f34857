"""Prometheus metrics of one app instance (its own registry, so apps never collide)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class Metrics:
    """Requests, latency, batch sizes, queue depth and decoded tokens."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "nmt_http_requests",
            "HTTP requests by route and status code",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "nmt_http_request_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "nmt_batch_texts",
            "texts per batched decode",
            ["model"],
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.decode_seconds = Histogram(
            "nmt_batch_decode_seconds",
            "time to decode one batch",
            ["model"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "nmt_queue_texts", "texts waiting to be decoded", ["model"], registry=self.registry
        )
        self.source_tokens = Counter(
            "nmt_source_tokens",
            "source subwords decoded; rate() gives tokens/s",
            ["model"],
            registry=self.registry,
        )
        self.target_tokens = Counter(
            "nmt_target_tokens",
            "target subwords produced; rate() gives tokens/s",
            ["model"],
            registry=self.registry,
        )


class RequestMetrics:
    """ASGI middleware counting requests by route template, method and status, and
    timing them. Pure ASGI rather than Starlette's ``BaseHTTPMiddleware``, which hides
    a client's disconnect from the routes (they could not drop its queued texts)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            # the route's template, not the raw path: unbounded label values leak memory
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - start)
