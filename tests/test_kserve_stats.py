"""Server statistics over KServe v2 REST as Triton writes them, which perf_analyzer reads: 64-bit
counts as JSON numbers, zero fields present, and /v2/models/stats for every model."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

from tests.helpers import free_port, model_folder, running_server

DURATIONS = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


def get(base: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_statistics_are_numbers_with_zeros_kept_for_one_model_and_all(
    tiny_model: Path, tmp_path: Path
) -> None:
    models = model_folder(tmp_path / "models", tiny_model, "alpha", "beta")
    with running_server([models / "alpha.onnx", models / "beta.onnx"], http_port=free_port()) as (server, _):
        base = f"http://127.0.0.1:{server.http_port}"
        seeds = {"name": "SEED", "datatype": "UINT64", "shape": [3], "data": [1, 2, 3]}
        get(base, "/v2/models/alpha/infer", {"inputs": [seeds]})
        (alpha,) = get(base, "/v2/models/alpha/stats")["model_stats"]
        everyone = get(base, "/v2/models/stats")["model_stats"]
    assert alpha["name"] == "alpha" and alpha["inference_count"] == 3 and alpha["execution_count"] >= 1
    assert isinstance(alpha["last_inference"], int) and alpha["last_inference"] > 0
    for name in DURATIONS:  # every duration, the zero ones too, as {count, ns} numbers
        assert set(alpha["inference_stats"][name]) == {"count", "ns"}, name
        assert all(type(v) is int for v in alpha["inference_stats"][name].values()), name
    assert (
        alpha["inference_stats"]["success"]["count"] >= 1 and alpha["inference_stats"]["fail"]["count"] == 0
    )
    assert all(type(b["batch_size"]) is int for b in alpha["batch_stats"])
    assert sorted(m["name"] for m in everyone if not m["name"].endswith(".synthesis")) == ["alpha", "beta"]
    beta = next(m for m in everyone if m["name"] == "beta")
    assert beta["inference_count"] == 0 and beta["execution_count"] == 0  # zeros written, not left out
