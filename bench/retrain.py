"""Does a recipe re-train bit for bit? Two checkpoints compared tensor by tensor, or a recipe trained
twice and its two checkpoints compared.

A model card promises that its recipe re-trains to the same bytes on the same machine with the same
`--threads`. This checks the promise rather than the mechanism: G, G_ema and D (and the optimisers
when both sides have them), every tensor, with one SHA-256 per file over its tensors in key order.

    python -m bench.retrain --compare models/nouns32-default runs/retrain/default --out A.json
    python -m bench.retrain --twice data/nouns --preset nouns32 --threads 2 --steps 400 --out B.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from artctl_trainer.checkpoint import load_checkpoint
from bench.gpu_cross import cpu_model

FILES = ("G", "G_ema", "G_avg", "D", "optim")


def tensors_sha256(tensors: dict[str, torch.Tensor]) -> str:
    """One digest of a file's tensors: names, dtypes, shapes and bytes, in key order."""
    digest = hashlib.sha256()
    for key in sorted(tensors):
        t = tensors[key].contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def compare(a: Path, b: Path) -> dict[str, Any]:
    """Each checkpoint file both sides have: identical or not, and where not, how far apart."""
    ck_a, ck_b = load_checkpoint(a), load_checkpoint(b)
    out: dict[str, Any] = {"a": str(a), "b": str(b), "files": {}}
    for side, ck in (("a", ck_a), ("b", ck_b)):
        state = json.loads((ck.path / "state.json").read_text())
        out[f"{side}_step"], out[f"{side}_kimg"] = state["step"], state["kimg"]
    for name in FILES:
        pa, pb = ck_a.path / f"{name}.safetensors", ck_b.path / f"{name}.safetensors"
        if not (pa.is_file() and pb.is_file()):
            continue
        ta, tb = load_file(str(pa)), load_file(str(pb))
        differing = [
            k
            for k in sorted(ta.keys() | tb.keys())
            if k not in ta or k not in tb or not torch.equal(ta[k], tb[k])
        ]
        largest = max(
            (
                float((ta[k].double() - tb[k].double()).abs().max())
                for k in differing
                if k in ta and k in tb and ta[k].is_floating_point()
            ),
            default=0.0,
        )
        out["files"][name] = {
            "tensors": len(ta),
            "differing": len(differing),
            "largest_difference": largest,
            "sha256_a": tensors_sha256(ta),
            "sha256_b": tensors_sha256(tb),
        }
    out["identical"] = bool(out["files"]) and all(f["differing"] == 0 for f in out["files"].values())
    return out


def train(data: str, preset: str, threads: int, steps: int, out: Path) -> float:
    """One `artctl train` of the recipe in a fresh process; its wall-clock seconds."""
    command = [sys.executable, "-m", "artctl", "train", data, "--preset", preset, "--threads", str(threads)]
    command += ["--steps", str(steps), "--keep-checkpoints", "1", "--out", str(out)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def machine() -> dict[str, Any]:
    return {"cpu": cpu_model(), "python": platform.python_version(), "torch": torch.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two runs or checkpoints")
    parser.add_argument("--twice", metavar="DATA", help="train the recipe on DATA twice and compare")
    parser.add_argument("--preset", default="nouns32")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if bool(args.compare) == bool(args.twice):
        parser.error("give one of --compare A B or --twice DATA")
    if args.compare:
        result = compare(*args.compare)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            seconds = [train(args.twice, args.preset, args.threads, args.steps, Path(tmp) / r) for r in "ab"]
            result = compare(Path(tmp) / "a", Path(tmp) / "b")
        result.update(a=f"run 1 of {args.preset}", b=f"run 2 of {args.preset}", seconds=seconds)
        result["command"] = (
            f"artctl train {args.twice} --preset {args.preset} --threads {args.threads} --steps {args.steps}"
        )
    result["machine"] = machine()
    print(f"{'file':<7} {'tensors':>7} {'differing':>9} {'largest diff':>12}  sha256 (a / b)")
    for name, f in result["files"].items():
        digests = f"{f['sha256_a'][:16]} / {f['sha256_b'][:16]}"
        print(f"{name:<7} {f['tensors']:>7} {f['differing']:>9} {f['largest_difference']:>12.3g}  {digests}")
    print(f"identical: {result['identical']}  (steps {result['a_step']} / {result['b_step']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
