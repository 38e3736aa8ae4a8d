"""Exporter benchmark: is the exported model faster than PyTorch, and which optimisations pay?

Each latency is measured in its own process (fresh allocator, threads and caches), at batch 1, 16
and 64, for a DCGAN-64 and a StyleGAN-64 (the emoji preset's network, untrained: speed does not
depend on the weights):
  torch         PyTorch eager, G_ema + quantisation
  ort           the exported file (offline BASIC), session at EXTENDED (what the server does)
  ort-none      exported without offline optimisation
  ort-extended  offline EXTENDED (EP-specific fusions baked in)
  ort-slim      the exported file after onnxslim
  ort-fp16      --precision fp16 (on CPU, ONNX Runtime mostly casts back to fp32: a GPU feature)
  ort-int8      onnxruntime.quantization dynamic int8 weights, with its pixel error vs fp32
Prints tables and writes bench/results/export.json.

    python -m bench.export
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
BATCHES = (1, 16, 64)

NETWORKS: dict[str, dict[str, Any]] = {
    "dcgan-64": {"architecture": "dcgan", "resolution": 64, "channels": 4, "z_dim": 128, "g_base": 64},
    # The default model's network, unconditional as this benchmark has always measured it.
    "stylegan-64": {
        **json.loads((REPO / "models" / "emoji64-default" / "train-config.json").read_text())["network"],
        "conditional": False,
    },
}


def _feeds(model_inputs: list[str], z_dim: int, batch: int) -> dict[str, np.ndarray]:
    from artctl.seeds import latents

    feeds = {"z": latents(range(batch), z_dim)}
    if "psi" in model_inputs:
        feeds["psi"] = np.full(batch, 0.7, dtype=np.float32)
    if "label" in model_inputs:
        feeds["label"] = np.zeros(batch, dtype=np.int64)
    return feeds


def _time(fn: Any, seconds: float = 2.0) -> float:
    """Median seconds per call after a warm-up."""
    for _ in range(3):
        fn()
    samples: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(samples) < 5:
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def worker(kind: str, path: str, batch: int) -> dict[str, Any]:
    """One measurement in this process: ms per batch."""
    if kind == "torch":
        import torch

        from artctl_trainer.checkpoint import load_checkpoint
        from artctl_trainer.networks import build_generator
        from artctl_trainer.preview import quantize

        ck = load_checkpoint(Path(path))
        G = build_generator(ck.config.network)
        G.load_state_dict(ck.tensors(ck.generator_file))
        G.eval()
        inputs = ["z"] + (["psi"] if getattr(G, "has_psi", False) else [])
        tensors = {k: torch.from_numpy(v) for k, v in _feeds(inputs, ck.config.network.z_dim, batch).items()}

        @torch.no_grad()
        def run() -> None:
            z = tensors["z"]
            quantize(G(z, psi=tensors["psi"]) if "psi" in tensors else G(z))

        return {"ms": _time(run) * 1000, "threads": torch.get_num_threads()}
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feeds = _feeds(names, session.get_inputs()[0].shape[1], batch)
    return {"ms": _time(lambda: session.run(["image"], feeds)) * 1000}


def measure(kind: str, path: Path, batch: int) -> float:
    out = subprocess.run(
        [sys.executable, "-m", "bench.export", "--worker", kind, str(path), str(batch)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["ms"])


def build(work: Path, name: str, network: dict[str, Any]) -> dict[str, Path]:
    """Train one step, then export every variant (each parity-gated by the exporter itself)."""
    from artctl_exporter.export import ParityError, export_checkpoint
    from artctl_trainer.config import NetworkConfig, TrainConfig
    from artctl_trainer.training_loop import training_loop

    run = work / name / "run"
    training_loop(TrainConfig(network=NetworkConfig(**network), steps=1, batch=4, synthetic_size=32), run)
    files = {"torch": run}
    files["ort"] = export_checkpoint(run, work / name / "basic.onnx", parity_seeds=16, companions=False).path
    for level in ("none", "extended"):
        path = work / name / f"{level}.onnx"
        files[f"ort-{level}"] = export_checkpoint(
            run, path, parity_seeds=16, optimize=level, companions=False
        ).path
    try:
        path = work / name / "fp16.onnx"
        files["ort-fp16"] = export_checkpoint(
            run, path, parity_seeds=16, precision="fp16", companions=False
        ).path
    except ParityError as exc:
        print(f"{name}: fp16 refused by the parity gate: {exc}")
    import onnx
    import onnxslim

    slim = onnxslim.slim(onnx.load(str(files["ort"])))
    onnx.save(slim, str(work / name / "slim.onnx"))
    files["ort-slim"] = work / name / "slim.onnx"
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(files["ort"]), str(work / name / "int8.onnx"), weight_type=QuantType.QInt8)
    files["ort-int8"] = work / name / "int8.onnx"
    return files


def int8_error(fp32: Path, int8: Path) -> dict[str, float]:
    """How far int8 pixels are from fp32 pixels over 64 seeds (the exporter's gate would refuse it)."""
    import onnxruntime as ort

    def render(path: Path) -> np.ndarray:
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return s.run(["image"], _feeds([i.name for i in s.get_inputs()], s.get_inputs()[0].shape[1], 64))[0]

    a, b = render(fp32).astype(np.float64), render(int8).astype(np.float64)
    mse = float(np.mean((a - b) ** 2))
    return {
        "max_abs_pixel_diff": float(np.abs(a - b).max()),
        "pixels_differing_share": float(np.mean(a != b)),
        "psnr_db": float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse),
    }


def node_count(path: Path) -> int:
    import onnx

    return len(onnx.load(str(path)).graph.node) if path.suffix == ".onnx" else 0


def main() -> None:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=fmt)
    parser.add_argument("--worker", nargs=3, metavar=("KIND", "PATH", "BATCH"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    args = parser.parse_args()
    if args.worker:
        kind, path, batch = args.worker
        print(json.dumps(worker(kind, path, int(batch))))
        return
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "batches": list(BATCHES),
        "models": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for name, network in NETWORKS.items():
            files = build(Path(tmp), name, network)
            rows = {kind: {str(b): measure(kind, path, b) for b in BATCHES} for kind, path in files.items()}
            results["models"][name] = {
                "ms_per_batch": rows,
                "nodes": {kind: node_count(path) for kind, path in files.items()},
                "int8_vs_fp32": int8_error(files["ort"], files["ort-int8"]),
            }
    for name, doc in results["models"].items():
        rows = doc["ms_per_batch"]
        print(f"\n{name}: ms per batch (median, own process each), {os.cpu_count()} CPUs")
        print(f"{'variant':<13}" + "".join(f"{'batch ' + str(b):>11}" for b in BATCHES) + f"{'nodes':>8}")
        for kind, by_batch in rows.items():
            cells = "".join(f"{by_batch[str(b)]:>11.2f}" for b in BATCHES)
            print(f"{kind:<13}{cells}{doc['nodes'][kind]:>8}")
        speedup = {b: rows["torch"][str(b)] / rows["ort"][str(b)] for b in BATCHES}
        doc["ort_speedup_over_torch"] = speedup
        print("ORT / PyTorch speed-up: " + ", ".join(f"batch {b}: {s:.2f}x" for b, s in speedup.items()))
        e = doc["int8_vs_fp32"]
        print(
            f"int8 vs fp32 pixels: max diff {e['max_abs_pixel_diff']:.0f}, "
            f"{e['pixels_differing_share']:.1%} differ, PSNR {e['psnr_db']:.1f} dB"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "export.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {args.out / 'export.json'}")


if __name__ == "__main__":
    main()
