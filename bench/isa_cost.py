"""What the portable render path costs: serving speed and quality, float graph vs exact graph, one run.

Both exports of one checkpoint are measured side by side on the same machine in the same run:
`artctl serve` throughput at one concurrency (bench.serve's load generator, one seed per request,
PNG at the model's delivery scale), alternating float and exact `--reps` times so that drift on a
shared box falls on both; then `artctl metrics fid` (FID/KID against the held-out set and, for pixel
art, the pixel-art scores) at the same n and seeds; and the share of pixels the two render alike.

    artctl export models/nouns32-default --arithmetic float --out /tmp/isa/float.onnx
    artctl export models/nouns32-default --arithmetic exact --out /tmp/isa/exact.onnx
    python -m bench.isa_cost --float /tmp/isa/float.onnx --exact /tmp/isa/exact.onnx \\
        --data data/nouns-heldout --out bench/results/isa-cost.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

from bench.serve import REPO, run_server_sweep

ARMS = ("float", "exact")


def agreement(paths: dict[str, Path], seeds: int) -> dict[str, float]:
    """Share of uint8 values and of whole images the exact graph renders as the float graph does."""
    import onnx

    from artctl_serving.runtime import Engine, load_model
    from bench.isa_portable import _feeds

    rendered = {}
    for arm, path in paths.items():
        runtime = load_model(path, engine=Engine.choose("cpu"))
        card = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
        labels = _feeds(card, range(seeds)).get("label")
        ids = np.arange(seeds, dtype=np.uint64)
        rendered[arm] = runtime.render(ids, labels=labels) if labels is not None else runtime.render(ids)
    same = rendered["float"] == rendered["exact"]
    return {"values_equal": float(same.mean()), "images_equal": float(same.all(axis=(1, 2, 3)).mean())}


def quality(model: Path, data: str, n: int) -> dict[str, Any]:
    """`artctl metrics fid --json` of one model (FID/KID, and the pixel-art scores for pixel art)."""
    command = [sys.executable, "-m", "artctl", "metrics", "fid", "--model", str(model), "--data", data]
    done = subprocess.run(
        [*command, "--n", str(n), "--json"], capture_output=True, text=True, check=True, cwd=REPO
    )
    return dict(json.loads(done.stdout))


def flat_scores(report: dict[str, Any]) -> dict[str, float]:
    """The numbers worth a row: FID, KID x 10^3, precision/recall and the pixel-art scores."""
    out = {"fid": float(report["fid"]), "kid_x1000": 1000 * float(report["kid"])}
    for section in ("gate", "pixel_art"):
        for key, value in (report.get(section) or {}).items():
            if (
                isinstance(value, (int, float))
                and not isinstance(value, bool)
                and key not in ("n", "compared")
            ):
                out[key] = float(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--float", type=Path, required=True, help="the --arithmetic float export")
    parser.add_argument("--exact", type=Path, required=True, help="the --arithmetic exact export")
    parser.add_argument("--data", required=True, help="the held-out set the quality gate scores against")
    parser.add_argument("--n", type=int, default=10_000, help="generated images per FID")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scale", type=int, default=1, help="delivered size: native x N")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    paths = {"float": args.float, "exact": args.exact}
    import onnxruntime as ort

    speed: dict[str, list[float]] = {arm: [] for arm in ARMS}
    server = ["--max-batch", "64", "--provider", "cpu"]
    for _ in range(args.reps):
        for arm in ARMS:
            rows = run_server_sweep(paths[arm], server, [args.concurrency], args.seconds, args.scale)
            speed[arm].append(rows[0]["images_per_s"])
    result: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "onnxruntime": ort.__version__,
        },
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "reps": args.reps,
        "images_per_s": {arm: speed[arm] for arm in ARMS},
        "agreement": agreement(paths, 1024),
        "quality": {arm: quality(paths[arm], args.data, args.n) for arm in ARMS},
    }
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(
        f"float vs exact, {os.cpu_count()} CPUs, concurrency {args.concurrency}, {args.reps} alternating reps"
    )
    print(f"{'':28}{'float':>12}{'exact':>12}")
    mean = {arm: float(np.mean(speed[arm])) for arm in ARMS}
    print(f"{'img/s (mean of reps)':28}{mean['float']:>12.0f}{mean['exact']:>12.0f}")
    scores = {arm: flat_scores(result["quality"][arm]) for arm in ARMS}
    for key in scores["float"]:
        if key in scores["exact"]:
            print(f"{key:28}{scores['float'][key]:>12.4g}{scores['exact'][key]:>12.4g}")
    agree = result["agreement"]
    print(
        f"exact renders as float: {agree['values_equal']:.1%} of values, "
        f"{agree['images_equal']:.1%} of images"
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
