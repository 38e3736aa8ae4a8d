"""Prometheus metrics (docs/serving.md lists them; base units), on a registry owned by one server."""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    request_duration: Histogram
    queue_wait: Histogram
    batch_size: Histogram
    inference_duration: Histogram
    encode_duration: Histogram

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        if registry is None:  # a registry of its own gets the process metrics the default one has
            ProcessCollector(registry=r)
            PlatformCollector(registry=r)
            GCCollector(registry=r)
        histograms = {  # attribute: (metric name, help, labels, buckets)
            "request_duration": (
                "artctl_request_duration_seconds",
                "Whole RPC time, by model, method and status code",
                ("model", "rpc", "code"),
                LATENCY_BUCKETS,
            ),
            "queue_wait": (
                "artctl_queue_wait_seconds",
                "Time from admission to inference start",
                ("model",),
                LATENCY_BUCKETS,
            ),
            "batch_size": ("artctl_batch_size", "Images per inference call", ("model",), BATCH_BUCKETS),
            "inference_duration": (
                "artctl_inference_duration_seconds",
                "ONNX Runtime time per batch",
                ("model",),
                LATENCY_BUCKETS,
            ),
            "encode_duration": (
                "artctl_encode_duration_seconds",
                "Image encoding time per image",
                ("format",),
                LATENCY_BUCKETS,
            ),
        }
        for attr, (name, doc, labels, buckets) in histograms.items():
            setattr(self, attr, Histogram(name, doc, list(labels), buckets=buckets, registry=r))
        self.requests = Counter(
            "artctl_requests", "RPCs by model, method and status code", ["model", "rpc", "code"], registry=r
        )
        self.images = Counter("artctl_images", "Images rendered", ["model"], registry=r)
        self.queue_depth = Gauge("artctl_queue_depth", "Images waiting for inference", ["model"], registry=r)
        self.reload_failures = Counter(
            "artctl_reload_failures",
            "Model files a reload refused or could not read (what was served keeps serving)",
            registry=r,
        )
        self.model_info = Gauge(
            "artctl_model_info", "Loaded models (value 1)", ["model", "sha256", "provider"], registry=r
        )

    def observe_batch(self, label: str, size: int, seconds: float, waits: list[float]) -> None:
        """One inference call of `label`'s batcher: its size, its time, each request's queue wait."""
        self.batch_size.labels(label).observe(size)
        self.inference_duration.labels(label).observe(seconds)
        for wait in waits:
            self.queue_wait.labels(label).observe(wait)
