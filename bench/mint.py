"""Mint benchmark: tokens/s and peak memory of `artctl mint --local` (a benchmark, not a test).

The model comes from a quick training run through the real CLI (`artctl train synthetic:shapes
--steps 50 --resolution 32`, then `artctl export`), unless --model is given. Three runs of the
same config are timed, each the real CLI in its own process (peak RSS is that process's, from
wait4): a fresh mint, a re-run (every finished token verified on disk and skipped), and
`artctl verify --local` (every token re-rendered and checked). With --shards N it also mints the
collection as N shards and times `artctl merge` joining them.

Peak RSS should not grow with --tokens: mint, merge and verify stream the token entries (journal,
shard manifests, manifest) instead of holding them, so 10k and 40k tokens peak alike.

    python -m bench.mint --tokens 10000 --out bench/results      # table + mint.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ARTCTL = [sys.executable, "-m", "artctl"]

CONFIG = """name = "Bench"
symbol = "BNCH"
size = {size}
salt = "bench-salt"
start_index = 1
model = "{model}"
ipfs = true
[royalties]
basis_points = 500
recipient = "0x000000000000000000000000000000000000dEaD"
[[traits]]
name = "Palette"
kind = "derived"
source = "dominant_colour"
[[traits]]
name = "Brightness"
kind = "derived"
source = "brightness"
values = ["Dark", "Dim", "Bright", "Radiant"]
thresholds = [64, 128, 192]
[[traits]]
name = "Background"
kind = "derived"
source = "transparency"
values = ["Solid", "Cut-out", "Floating"]
thresholds = [50, 80]
"""


def timed(cmd: list[str]) -> dict[str, float]:
    """Run a command; wall seconds and the child's peak RSS (MiB) via wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"{' '.join(cmd[2:4])} failed ({proc.returncode}): {err.strip()}")
    return {"seconds": seconds, "peak_rss_mib": usage.ru_maxrss / 1024}


def build_model(work: Path, steps: int, resolution: int) -> Path:
    run, model = work / "run", work / "bench.onnx"
    timed([*ARTCTL, "train", "synthetic:shapes", "--out", str(run), "--steps", str(steps),
           "--resolution", str(resolution), "--sample-every", str(steps)])  # fmt: skip
    timed([*ARTCTL, "export", str(run), "--out", str(model), "--name", "bench"])
    return model


def time_merge(config: Path, work: Path, shards: int) -> dict[str, float]:
    """Mint the collection as `shards` shards (untimed), then time `artctl merge` joining them."""
    parts = [work / f"shard{i}" for i in range(shards)]
    for i, part in enumerate(parts):
        timed([*ARTCTL, "mint", str(config), "--out", str(part), "--local", "--shard", f"{i}/{shards}"])
    return timed([*ARTCTL, "merge", str(work / "merged"), *map(str, parts)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--model", type=Path, default=None, help="an exported .onnx (default: train one)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--resolution", type=int, default=32)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the drop folder")
    parser.add_argument("--shards", type=int, default=0, help="also mint N shards and time the merge")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="artctl-bench-mint-"))
    try:
        model = args.model.resolve() if args.model else build_model(work, args.steps, args.resolution)
        config = work / "collection.toml"
        config.write_text(CONFIG.format(size=args.tokens, model=model))
        drop = work / "drop"
        runs: list[dict[str, Any]] = []
        for name, cmd in (
            ("mint (fresh)", [*ARTCTL, "mint", str(config), "--out", str(drop), "--local"]),
            ("mint (re-run: verify + skip)", [*ARTCTL, "mint", str(config), "--out", str(drop), "--local"]),
            ("verify --local (re-render all)", [*ARTCTL, "verify", str(drop), "--local"]),
        ):
            result = timed(cmd)
            runs.append({"run": name, **result, "tokens_per_s": args.tokens / result["seconds"]})
        if args.shards > 1:
            result = time_merge(config, work, args.shards)
            runs.append(
                {
                    "run": f"merge ({args.shards} shards)",
                    **result,
                    "tokens_per_s": args.tokens / result["seconds"],
                }
            )
        card = (
            json.loads(model.with_suffix(".json").read_text()) if model.with_suffix(".json").exists() else {}
        )
        files = sum(1 for _ in drop.rglob("*") if _.is_file())
        report = {
            "benchmark": "mint",
            "tokens": args.tokens,
            "model": {"path": str(model), "sha256": card.get("sha256", ""), "resolution": args.resolution},
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cpus": os.cpu_count(),
            },
            "drop_files": files,
            "drop_bytes": sum(p.stat().st_size for p in drop.rglob("*") if p.is_file()),
            "runs": runs,
            "target_seconds_10k": 60,
        }
        print(f"\nmint: {args.tokens} tokens, {files} files, {os.cpu_count()} CPUs, {platform.machine()}")
        print(f"{'run':<34}{'seconds':>10}{'tokens/s':>12}{'peak RSS MiB':>15}")
        for r in runs:
            print(f"{r['run']:<34}{r['seconds']:>10.1f}{r['tokens_per_s']:>12.0f}{r['peak_rss_mib']:>15.0f}")
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "mint.json").write_text(json.dumps(report, indent=2) + "\n")
        print(f"\nwrote {args.out / 'mint.json'}")
        if args.keep:
            print(f"drop kept in {drop}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
