"""Prometheus metrics of one app instance (its own registry, so apps never collide)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
