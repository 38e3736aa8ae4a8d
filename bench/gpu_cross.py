"""Cross-machine CPU EP: does another machine's CPU render the default model's seeds as this one does?

The latents' float32 bytes and the pixel hashes of seeds 0..N-1 of the embedded default model,
rendered on the CPU EP at the served profile (label = seed mod labels, the card's psi). One JSON
is computed here and committed (bench/results/cpu-reference.json); the GPU box computes its own
under each onnxruntime it is given (a subprocess per PYTHONPATH) and compares them seed by seed.

    python -m bench.gpu_cross --seeds 4096 --json bench/results/cpu-reference.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
OWN = "own"  # the site of the calling process: its PYTHONPATH unchanged


def cpu_model() -> str:
    """The CPU's name and the vector units that decide which kernels ONNX Runtime picks."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.machine()
    name = next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("model name")), "?")
    flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines() if ln.startswith("flags")), [])
    units = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_tile") if f in flags]
    return f"{name} ({platform.machine()}; {' '.join(units) or 'no avx2'})"


def cpu_hashes(seeds: int) -> dict[str, Any]:
    import onnxruntime as ort

    from artctl.models import embedded_default
    from artctl.seeds import latents, pixel_sha256
    from artctl_serving.runtime import Engine, load_model

    model = embedded_default()
    assert model is not None
    runtime = load_model(model, engine=Engine.choose("cpu"))
    all_seeds = np.arange(seeds, dtype=np.uint64)
    z = latents(all_seeds, runtime.card.z_dim)
    labels = None
    if runtime.card.has_label:
        labels = (all_seeds % np.uint64(len(runtime.card.label_names))).astype(np.int64)
    pixels: list[str] = []
    for start in range(0, seeds, 64):
        part = slice(start, start + 64)
        images = runtime.render(all_seeds[part], None, None if labels is None else labels[part])
        pixels += [pixel_sha256(img)[:32] for img in images]
    return {
        "onnxruntime": ort.__version__,
        "machine": f"{cpu_model()}, {os.cpu_count()} cores",
        "model_sha256": runtime.sha256,
        "profile": str(runtime.profile),
        "latents": [hashlib.sha256(row.astype("<f4").tobytes()).hexdigest()[:16] for row in z],
        "pixels": pixels,
    }


def compare_hashes(ours: dict[str, Any], theirs: dict[str, Any]) -> dict[str, Any]:
    n = min(len(ours["pixels"]), len(theirs["pixels"]))
    lat = [i for i in range(n) if ours["latents"][i] != theirs["latents"][i]]
    pix = [i for i in range(n) if ours["pixels"][i] != theirs["pixels"][i]]
    return {
        "seeds": n,
        "same_model": ours["model_sha256"] == theirs["model_sha256"],
        "latent_mismatches": len(lat),
        "pixel_mismatches": len(pix),
        "first_mismatching_seeds": pix[:16],
        "onnxruntime": [ours["onnxruntime"], theirs["onnxruntime"]],
    }


def hashes_under(pythonpath: str | None, seeds: int, path: Path, timeout: float) -> dict[str, Any]:
    """cpu_hashes in a fresh process whose PYTHONPATH is `pythonpath` (None: inherited) + the repo."""
    env = dict(os.environ)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, str(REPO)) if p)
    cmd = [sys.executable, "-m", "bench.gpu_cross", "--seeds", str(seeds), "--json", str(path)]
    try:
        done = subprocess.run(
            cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=max(1.0, timeout)
        )
    except subprocess.TimeoutExpired:
        return {"error": f"out of time after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    result: dict[str, Any] = json.loads(path.read_text())
    return result


def cross(
    work: Path,
    seeds: int,
    reference: Path | None,
    sites: dict[str, str],
    stop_at: float,
    partial: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Each site's hashes against the reference and against this process's own onnxruntime
    (`partial` receives each site's entry as it is done)."""
    ref = json.loads(reference.read_text()) if reference else None
    found: dict[str, dict[str, Any]] = {}
    report: dict[str, Any] = {}
    if partial is not None:
        partial["sites"] = report
    for name, pythonpath in {OWN: None, **sites}.items():
        if time.perf_counter() > stop_at:
            report[name] = {"skipped": "out of time"}
            continue
        ours = hashes_under(pythonpath, seeds, work / f"hashes-{name}.json", stop_at - time.perf_counter())
        if "error" in ours:
            report[name] = ours
            continue
        found[name] = ours
        entry: dict[str, Any] = {k: ours[k] for k in ("onnxruntime", "machine")}
        entry["pythonpath"] = pythonpath
        if ref is not None:
            entry["vs_reference"] = compare_hashes(ours, ref)
        if name != OWN and OWN in found:
            entry["vs_own"] = compare_hashes(ours, found[OWN])
        report[name] = entry
    return {
        "reference": None if ref is None else {k: ref[k] for k in ("onnxruntime", "machine")},
        "sites": report,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=4096)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(cpu_hashes(args.seeds)) + "\n")


if __name__ == "__main__":
    main()
