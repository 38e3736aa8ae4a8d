"""Prometheus metrics (DESIGN.md §4 names, base units), on a registry owned by one server."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "artctl_requests", "RPCs by model, method and status code", ["model", "rpc", "code"], registry=r
        )
        self.images = Counter("artctl_images", "Images rendered", ["model"], registry=r)
        self.request_duration = Histogram(
            "artctl_request_duration_seconds", "Whole RPC time", ["rpc"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "artctl_queue_wait_seconds",
            "Time from admission to inference start",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "artctl_batch_size", "Images per inference call", ["model"], buckets=BATCH_BUCKETS, registry=r
        )
        self.inference_duration = Histogram(
            "artctl_inference_duration_seconds",
            "ONNX Runtime time per batch",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.encode_duration = Histogram(
            "artctl_encode_duration_seconds",
            "Image encoding time per image",
            ["format"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("artctl_queue_depth", "Images waiting for inference", ["model"], registry=r)
        self.model_info = Gauge(
            "artctl_model_info", "Loaded models (value 1)", ["model", "sha256", "provider"], registry=r
        )
