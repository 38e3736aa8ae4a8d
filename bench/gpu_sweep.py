"""The server sweep of the GPU run: a real `artctl serve` under load from several processes.

For a 64 px and a 256 px model: the batched server, the same at --max-batch 1, and the in-process
ceiling (ONNX Runtime at the batch size + PNG or RAW encoding on every core), at concurrency 1, 16,
64 and 256 with one seed per request, PNG and RAW. The load comes from several processes (one
Python client tops out near a few thousand requests/s), each with its own seed range, and the
response cache is off so every request renders. Between levels the server's /metrics give the
share of wall time its inference thread spent in ONNX Runtime: well below 1 while the server
trails the ceiling means the GPU waits on something else (encoding, the event loop).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.serve import LOAD_SCRIPT, REPO, free_port, run_ceiling, serve_command, summarise

# The levels the targets name come first, so a short budget cuts the least telling rows.
LEVELS, SMOKE_LEVELS = (64, 256, 16, 1), (1, 4)
FORMATS = ("png", "raw")


def inference_seconds(metrics_port: int) -> float:
    """Total ONNX Runtime time the server has spent, over all models (its histogram's sum)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("artctl_inference_duration_seconds_sum")
    )


def load(target: str, concurrency: int, seconds: float, fmt: str, procs: int, salt: int) -> dict[str, Any]:
    """`concurrency` requests in flight, spread over `procs` client processes."""
    procs = max(1, min(procs, concurrency))
    shares = [concurrency // procs + (i < concurrency % procs) for i in range(procs)]
    running = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                LOAD_SCRIPT,
                target,
                str(n),
                str(seconds),
                "1.0",
                fmt,
                str((salt * 64 + i) * 10**10),
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env={
                **os.environ,
                "PYTHONPATH": os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), str(REPO)])),
            },
        )
        for i, n in enumerate(shares)
    ]
    latencies: list[float] = []
    errors = 0
    failed = 0
    for proc in running:
        try:
            out, _ = proc.communicate(timeout=seconds + 120)
            doc = json.loads(out)
        except (subprocess.TimeoutExpired, ValueError):  # a client that hung or crashed
            proc.kill()
            failed += 1
            continue
        latencies += doc["latencies"]
        errors += doc["errors"]
    return {**summarise(latencies, seconds, errors), "failed_clients": failed}


def server_rows(
    model: Path,
    provider: str,
    max_batch: int,
    levels: tuple[int, ...],
    seconds: float,
    stop_at: float,
    rows: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """Rows appended to `rows` as they are measured (a timeout keeps those done)."""
    port, metrics_port = free_port(), free_port()
    extra = ["--provider", provider, "--max-batch", str(max_batch), "--cache-mb", "0"]
    if max_batch == 1:  # one image per call at its natural shape, not padded to the canonical 64
        extra += ["--exec-batch", "0"]
    extra += ["--queue-size", "65536", "--log-level", "WARNING", "--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(serve_command(model, port, *extra), cwd=REPO)
    try:
        from artctl.cli.common import wait_for_server

        wait_for_server(f"127.0.0.1:{port}", timeout=120, proc=proc)
        procs = max(1, min(8, (os.cpu_count() or 2) // 2))
        for level in levels:
            for fmt in FORMATS:
                if time.perf_counter() + seconds + 2 > stop_at:
                    rows.append({"format": fmt, "concurrency": level, "skipped": "out of time"})
                    continue
                busy0, t0 = inference_seconds(metrics_port), time.perf_counter()
                row = load(f"127.0.0.1:{port}", level, seconds, fmt, procs, salt=len(rows))
                # Over the whole level, client start and drain included: a lower bound of busy.
                busy = (inference_seconds(metrics_port) - busy0) / (time.perf_counter() - t0)
                rows.append({"format": fmt, "concurrency": level, "inference_busy": round(busy, 3), **row})
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
    return rows


def sweep(
    models: dict[str, dict[str, Path]],
    provider: str,
    smoke: bool,
    stop_at: float,
    result: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`result` is filled as rows are measured, so a timeout keeps what was done."""
    levels = SMOKE_LEVELS if smoke else LEVELS
    seconds = 0.3 if smoke else 2.0
    max_batch = 8 if smoke else 256
    chosen = [m for m in ("dcgan64", "stylegan256") if m in models] or list(models)[:1]
    chosen = chosen[:1] if smoke else chosen  # a server start is most of a smoke run
    result = {} if result is None else result
    result.update(levels=list(levels), seconds_per_level=seconds, models={})
    for i, name in enumerate(chosen):
        path = models[name]["fp32"]
        share = (stop_at - time.perf_counter()) / (len(chosen) - i)
        part_stop = time.perf_counter() + share
        entry: dict[str, Any] = {"ceiling": [], "batched": [], "batch-1": []}
        result["models"][name] = entry
        try:  # one model's failure (a server that does not start) must not cost the other's rows
            entry["ceiling"] = [
                {"format": f, **run_ceiling(path, seconds, max_batch, provider, f)} for f in FORMATS
            ]
            batched_stop = time.perf_counter() + (part_stop - time.perf_counter()) * 0.55
            server_rows(path, provider, max_batch, levels, seconds, batched_stop, entry["batched"])
            server_rows(path, provider, 1, levels, seconds, part_stop, entry["batch-1"])
            entry["ratios"] = ratios(entry, levels)
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
    return result


def ratios(entry: dict[str, Any], levels: tuple[int, ...]) -> dict[str, Any]:
    """batched / batch-1 at the busiest level both reached, and the best batched / ceiling, per format."""
    out: dict[str, Any] = {}
    top = 64 if 64 in levels else levels[-1]
    for fmt in FORMATS:

        def at(mode: str, level: int, fmt: str = fmt) -> float | None:
            row: dict[str, Any] = next(
                (r for r in entry[mode] if r["format"] == fmt and r["concurrency"] == level), {}
            )
            return row.get("images_per_s")

        b, one = at("batched", top), at("batch-1", top)
        best = max((r.get("images_per_s", 0.0) for r in entry["batched"] if r["format"] == fmt), default=0.0)
        roof = next(c["images_per_s"] for c in entry["ceiling"] if c["format"] == fmt)
        measured = [r for r in entry["batched"] if r["format"] == fmt and "skipped" not in r]
        out[fmt] = {
            "levels_measured": sorted(r["concurrency"] for r in measured),
            f"batched_over_batch1_at_{top}": round(b / one, 2) if b and one else None,
            "best_batched_over_ceiling": round(best / roof, 3) if roof else None,
            "best_batched_images_per_s": round(best, 1),
        }
    return out
